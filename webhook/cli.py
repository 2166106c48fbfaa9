"""`plugin-guard`: the command-line entry point (click).

Subcommands live next to the code they drive and are only named here; each is imported
when it is run, so `check` does not pay for Flask, gunicorn or the HTTP client. This
module maps user-facing errors to one-line messages and exit codes in one place.
"""

from __future__ import annotations

import importlib
import sys

import click

from webhook import __version__
from webhook.errors import GuardError

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2

# command name -> "module:attribute" of its click command
SUBCOMMANDS = {
    "check": "webhook.check:check",
    "build": "webhook.check:build",
    "serve": "webhook.server.commands:serve",
    "execute": "webhook.dispatch.commands:execute",
    "dev": "webhook.dispatch.commands:dev",
    "agent": "webhook.agent.commands:agent",
    "test": "webhook.policytest.commands:test",
    "fix": "webhook.fix.commands:fix",
    "audit": "webhook.audit.commands:audit",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *SUBCOMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
