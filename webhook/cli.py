"""`plugin-guard`: the command-line entry point (click).

Subcommands live next to the code they drive and are only registered here; this module
maps user-facing errors to one-line messages and exit codes in one place.
"""

from __future__ import annotations

import sys

import click

from webhook import __version__
from webhook.errors import GuardError

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plugin-guard")
def cli() -> None:
    """Admission webhook and policy validator for Argo Workflows executor plugins."""


def main() -> None:
    """Console-script entry: never show a traceback for a user-facing error."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except GuardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)


# Subcommands register themselves below (one import + add_command line each).

from webhook.check import build, check  # noqa: E402

cli.add_command(check)
cli.add_command(build)

from webhook.dispatch.commands import dev, execute  # noqa: E402

cli.add_command(execute)
cli.add_command(dev)

from webhook.server.commands import serve  # noqa: E402

cli.add_command(serve)
