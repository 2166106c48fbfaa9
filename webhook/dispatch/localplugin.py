"""Run an executor plugin on this machine the way its sidecar runs in the agent pod.

The token problem. In the cluster, `argoexec agent init` writes a random token to
`/var/run/argo/<container>/token` and the sidecar sees its own directory mounted at
`/var/run/argo`, so a plugin reads `/var/run/argo/token` (spec section 4.5). Plugins
hard-code that path, and `plugin-guard dev` must run them unmodified, without writing
anything into the host's real `/var/run` (where another plugin, or a real agent, may
live). The mechanism:

1. The plugin is started through `unshare --mount` (plus `--map-root-user` when not
   root): it gets a *private mount namespace*, a copy of the host's mount table in which
   mounts made from then on are invisible to the host. Propagation is set to private, so
   nothing leaks back.
2. Inside that namespace only, a small shell prologue gives `/var/run/argo` private
   content:
   - if the host has a `/var/run/argo` directory, a fresh tmpfs is mounted over it;
   - otherwise there is nothing to mount onto (creating the directory would touch the
     host), so a tmpfs is mounted on a private staging directory, every entry of the
     real `/var/run` is bind-mounted into it (sockets and all, so the plugin still sees
     them), an `argo` directory is added, and the staging tmpfs is moved over
     `/var/run`.
   It then copies the token in as `/var/run/argo/token` (mode 0440, no trailing
   newline, as Argo writes it) and `exec`s the plugin's own command, so the plugin is
   the process we started and there is no wrapper left to forget.
3. The token is handed over in a file in a 0700 temporary directory, never on a command
   line or in the environment, and that file is deleted as soon as the plugin listens.
   When the plugin exits, the namespace and its tmpfs disappear with it.

The plugin also gets `PR_SET_PDEATHSIG`, so it dies with `plugin-guard` even if that is
killed with SIGKILL, and runs in its own process group, which `stop()` terminates
(SIGTERM, then SIGKILL) so no child survives.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from webhook.errors import GuardError

TOKEN_DIR = "/var/run/argo"
TOKEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s rand.String: 27 consonants + digits (4.5)
TOKEN_LENGTH = 32
DEFAULT_STARTUP_TIMEOUT = 15.0  # about Argo's retry window for a sidecar to listen (6.3)
_PR_SET_PDEATHSIG = 1

# Runs inside the private mount namespace; $1 = staging dir, $2 = token file, then argv.
_NAMESPACE_PROLOGUE = r"""
set -eu
stage=$1; token_file=$2; shift 2
mount --make-rprivate /
run=$(readlink -f /var/run)
if [ -d "$run/argo" ]; then
    mount -t tmpfs -o mode=0755,size=1m plugin-guard-token "$run/argo"
else
    mount -t tmpfs -o mode=0755 plugin-guard-run "$stage"
    for entry in "$run"/* "$run"/.[!.]*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        name=${entry##*/}
        if [ -L "$entry" ]; then
            cp -P "$entry" "$stage/$name"
        elif [ -d "$entry" ]; then
            mkdir "$stage/$name" && mount --rbind "$entry" "$stage/$name"
        else
            : > "$stage/$name" && mount --bind "$entry" "$stage/$name"
        fi
    done
    mkdir -m 0755 "$stage/argo"
    mount --move "$stage" "$run"
fi
cat "$token_file" > "$run/argo/token"
chmod 0440 "$run/argo/token"
exec "$@"
"""


class LocalPluginError(GuardError):
    """The plugin could not be started or stopped answering (CLI exit code 2)."""


def new_token() -> str:
    """A token like Argo's (`rand.String(32)`, spec 4.5)."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """How to start the plugin process: the container's command line, env and port."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "."
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the argv holds the whole server script: keep logs short
        return f"LaunchSpec(name={self.name!r}, command={self.argv[:2]!r}, port={self.port})"


def launch_spec(
    name: str,
    container: Mapping[str, Any],
    *,
    port: int | None,
    cwd: str,
    extra_env: Mapping[str, str] | None = None,
) -> LaunchSpec:
    """The process the container would run: `command` + `args` (with `server.*` already
    substituted into args, spec section 2), `env` values, and `--env` overrides.

    Values from Secrets or ConfigMaps (`valueFrom`, `envFrom`) cannot be resolved
    locally; they produce a warning naming the variable, so the author can pass it with
    `--env NAME=VALUE`.
    """
    if port is None or port <= 0:
        raise LocalPluginError(
            f"plugin {name}: spec.sidecar.container.ports[0].containerPort is missing"
        )
    command = [str(part) for part in container.get("command") or []]
    args = [str(part) for part in container.get("args") or []]
    if not command:
        raise LocalPluginError(
            f"plugin {name}: the container has no `command`; plugin-guard dev cannot run an "
            "image's entrypoint (add a command, e.g. [python, -u, -c] with a server.py)"
        )
    command[0] = _resolve_program(command[0])
    overrides = dict(extra_env or {})
    env: dict[str, str] = {}
    warnings: list[str] = []
    for item in container.get("env") or []:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        var = str(item["name"])
        if "value" in item:
            env[var] = str(item["value"])
        elif "valueFrom" in item and var not in overrides:
            warnings.append(
                f"env {var} comes from a Secret or ConfigMap in the cluster and is not set "
                f"here; pass --env {var}=VALUE"
            )
    if container.get("envFrom"):
        warnings.append("envFrom is not resolved locally; pass the variables with --env")
    env.update(overrides)
    return LaunchSpec(name, command + args, port, env, cwd, tuple(warnings))


def _resolve_program(program: str) -> str:
    """`python` in a `python:alpine` image is whatever Python this host has."""
    if os.sep in program or shutil.which(program):
        return program
    if program in ("python", "python3"):
        return sys.executable
    raise LocalPluginError(f"command {program!r} is not installed on this machine")


def _base_environment() -> dict[str, str]:
    """A container starts with an almost empty environment; keep only what finding
    programs and decoding text need, not the developer's whole shell (or its secrets)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.setdefault("PATH", os.defpath)
    env["PYTHONUNBUFFERED"] = "1"  # so the plugin's log lines reach the log in order
    return env


def unshare_command() -> list[str]:
    """`unshare` with a private mount namespace, or a clear error why it is impossible."""
    program = shutil.which("unshare")
    if program is None:
        raise LocalPluginError(
            "plugin-guard dev needs `unshare` (util-linux) to give the plugin a private "
            "/var/run/argo; install util-linux"
        )
    command = [program, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        command.insert(2, "--map-root-user")
    probe = subprocess.run(
        [*command, "true"], capture_output=True, text=True, timeout=10, check=False
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise LocalPluginError(
            f"cannot create a private mount namespace ({reason}); run as root or enable "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
        )
    return command


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal, stop() still works
        return None


# Resolved in the parent: the child between fork and exec must not load libraries.
_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if plugin-guard dies (survives exec)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


class LocalPlugin:
    """A plugin process with its own `/var/run/argo/token`; use as a context manager."""

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        token: str | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec
        self.token = token if token is not None else new_token()
        self.startup_timeout = startup_timeout
        self._clock = clock
        self._sleep = sleep
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._log: IO[bytes] | None = None
        self._saved_logs = ""

    @property
    def address(self) -> str:
        return f"http://localhost:{self.spec.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def log_path(self) -> Path | None:
        return self._workdir / "plugin.log" if self._workdir else None

    def __enter__(self) -> LocalPlugin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the plugin and wait until it accepts connections on its port."""
        if port_in_use(self.spec.port):
            raise LocalPluginError(
                f"port {self.spec.port} is already in use by another process; "
                f"stop it before running plugin {self.spec.name}"
            )
        prefix = unshare_command()
        self._workdir = Path(tempfile.mkdtemp(prefix="plugin-guard-dev-"))  # mode 0700
        token_file = self._workdir / "token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.token)
        stage = self._workdir / "run"
        stage.mkdir()
        self._log = open(self._workdir / "plugin.log", "wb")  # noqa: SIM115 - closed in stop()
        argv = [
            *prefix,
            "sh",
            "-c",
            _NAMESPACE_PROLOGUE,
            "plugin-guard-dev",
            str(stage),
            str(token_file),
            *self.spec.argv,
        ]
        try:
            self._process = subprocess.Popen(
                argv,
                cwd=self.spec.cwd,
                env={**_base_environment(), **self.spec.env},
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only an async-signal-safe prctl call runs between fork and exec.
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            self.stop()
            raise LocalPluginError(f"cannot start plugin {self.spec.name}: {exc}") from None
        try:
            self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        token_file.unlink(missing_ok=True)  # the plugin has its copy in its own namespace

    def _wait_for_port(self) -> None:
        assert self._process is not None
        deadline = self._clock() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise LocalPluginError(
                    f"plugin {self.spec.name} exited with code {code} before opening port "
                    f"{self.spec.port}{self._last_log_line()}"
                )
            if port_in_use(self.spec.port):
                return
            if self._clock() >= deadline:
                raise LocalPluginError(
                    f"plugin {self.spec.name} did not open port {self.spec.port} within "
                    f"{self.startup_timeout:g}s{self._last_log_line()}"
                )
            self._sleep(0.05)

    def logs(self) -> str:
        """The plugin's output so far, with the token redacted."""
        path = self.log_path
        if path is None or not path.exists():
            return self._saved_logs
        if self._log is not None:
            self._log.flush()
        text = path.read_text(encoding="utf-8", errors="replace")
        return text.replace(self.token, "***") if self.token else text

    def _last_log_line(self) -> str:
        lines = [line for line in self.logs().splitlines() if line.strip()]
        return f" (last output: {lines[-1].strip()})" if lines else ""

    def stop(self, grace: float = 3.0) -> None:
        """Terminate the plugin's whole process group, then remove the temporary files."""
        process, self._process = self._process, None
        if process is not None:
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
            _signal_group(process.pid, signal.SIGKILL)  # children that ignored SIGTERM
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        if self._log is not None:
            self._saved_logs = self.logs()
            self._log.close()
            self._log = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def describe_argv(argv: Sequence[str]) -> str:
    """The command for a log line, with a long inline script shortened."""
    shown = [arg if len(arg) < 60 and "\n" not in arg else "<server.*>" for arg in argv]
    return " ".join(shown)
