"""Plugin tokens and plugin addresses the Argo way (spec sections 4.4 and 4.5).

- `write_token_files` is `argoexec agent init`: for each plugin (container) name,
  `<dir>/<name>/` with mode 0770 (an existing directory is an error, as it fails Argo's
  init container) and `<dir>/<name>/token` with mode 0440 holding `rand.String(32)`
  (27-letter consonant + digit alphabet), no trailing newline. Go creates them with
  `os.Mkdir(0o770)` and `os.WriteFile(0o440)` under the process umask; here the modes
  are set exactly, whatever the umask.
- `endpoints_from_env` is `argoexec agent main`: `ARGO_PLUGIN_ADDRESSES` and
  `ARGO_PLUGIN_NAMES` (JSON arrays, in sidecar order) and each token read from
  `<dir>/<name>/token`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from webhook.dispatch.localplugin import TOKEN_DIR, new_token
from webhook.dispatch.rpc import PluginEndpoint
from webhook.errors import GuardError

log = logging.getLogger(__name__)

ADDRESSES_ENV = "ARGO_PLUGIN_ADDRESSES"
NAMES_ENV = "ARGO_PLUGIN_NAMES"
DIR_MODE = 0o770
TOKEN_MODE = 0o440
_CONTAINER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS-1123 label


class AgentInputError(GuardError):
    """Bad agent configuration: plugin env, token files, options (CLI exit code 2)."""


def _json_list(environ: Mapping[str, str], variable: str, what: str) -> list[str]:
    raw = environ.get(variable, "")
    if not raw.strip():
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise AgentInputError(
            f"Failed to unmarshal plugin {what}: {variable} is not JSON"
        ) from None
    if value is None:  # the controller writes `null` when there are no sidecars
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AgentInputError(
            f"Failed to unmarshal plugin {what}: {variable} is not a list of strings"
        )
    return value


def plugin_names(environ: Mapping[str, str]) -> list[str]:
    return _json_list(environ, NAMES_ENV, "names")


def _check_name(name: str) -> None:
    if not _CONTAINER_NAME.match(name):
        raise AgentInputError(f"plugin name {name!r} is not a container name (a DNS-1123 label)")


def write_token_files(
    directory: str | Path, names: Sequence[str], *, token: Callable[[], str] = new_token
) -> list[Path]:
    """`argoexec agent init`; returns the token files written. Never logs a token."""
    written: list[Path] = []
    for name in names:
        _check_name(name)
        folder = Path(directory) / name
        filename = folder / "token"
        log.info("creating token file for plugin", extra={"plugin": name, "file": str(filename)})
        try:
            os.mkdir(folder, DIR_MODE)
            os.chmod(folder, DIR_MODE)
            fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL, TOKEN_MODE)
        except OSError as exc:
            raise AgentInputError(
                f"cannot create {exc.filename or folder}: {exc.strerror}"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, TOKEN_MODE)
            handle.write(token())
        written.append(filename)
    return written


def endpoints_from_env(
    environ: Mapping[str, str], token_dir: str | Path = TOKEN_DIR
) -> list[PluginEndpoint]:
    """The plugins of an Argo agent pod, in sidecar order, with their tokens."""
    addresses = _json_list(environ, ADDRESSES_ENV, "addresses")
    names = plugin_names(environ)
    if len(names) != len(addresses):
        raise AgentInputError(
            f"{ADDRESSES_ENV} has {len(addresses)} entries but {NAMES_ENV} has {len(names)}"
        )
    endpoints = []
    for address, name in zip(addresses, names, strict=True):
        _check_name(name)
        filename = Path(token_dir) / name / "token"
        log.info("loading token file for plugin", extra={"plugin": name, "file": str(filename)})
        try:
            token = filename.read_text(encoding="utf-8")
        except OSError as exc:
            raise AgentInputError(f"Failed to read token file {filename}: {exc.strerror}") from None
        endpoints.append(PluginEndpoint(address=address.rstrip("/"), token=token, name=name))
    return endpoints
