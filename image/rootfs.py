#!/usr/bin/env python3
"""The image's final filesystem built without a container engine, and run as a runtime would.

Where no Docker daemon and no image registry can be reached (this project's machines and
CI reach only PyPI, Debian's archive and npm), `build()` makes the filesystem that the
Dockerfile's final stage makes:

1. a Debian bookworm root filesystem (`mmdebstrap --variant=minbase`, the variant Debian's
   own `debian:bookworm-slim` image is made with, which python:3.12-slim-bookworm is built
   on) with `python3`, `python3-venv` and `ca-certificates`;
2. the project's wheel and a wheel of every dependency, made on this host the way the
   Dockerfile's `build` stage makes them (`pip wheel` of the source tree; the dependency
   wheels chosen for the root filesystem's Python and C library);
3. image/install.sh, the script the Dockerfile's final stage RUNs, run unchanged in that
   root (chroot): the venv /opt/plugin-guard, /usr/local/bin/plugin-guard, uid/gid 10001.

The one difference is the interpreter: the Dockerfile's base carries CPython 3.12 built
into /usr/local, which only that registry serves; Debian bookworm's python3 is 3.11 in
/usr. install.sh makes the same venv on either (the project supports 3.11+), so every path
the chart and the entry point use is the same.

`start()` then runs a command from that filesystem the way a container runtime runs the
chart's pod: the image's ENV/USER/WORKDIR/ENTRYPOINT read from the Dockerfile's final stage,
the root read-only (an overlay over the cached tree, remounted read-only: mount points are
made in the overlay, never in the cache), tmpfs and read-only bind mounts for the pod's
volumes, a fresh /proc and a minimal /dev, its own mount, PID and network namespaces
(only loopback, so port 8443 is the container's own), no-new-privileges, uid/gid 10001.

Results are cached under $XDG_CACHE_HOME/argo-plugin-guard/image-rootfs (default
~/.cache/...): the Debian tree keyed by its package list and options, the installed tree
keyed by every file the image is made of. Needs root (mount, chroot), and mmdebstrap,
unshare, nsenter, setpriv and ip.

    python3 image/rootfs.py build            # prints the root filesystem's path
    python3 image/rootfs.py run -- --help    # the entry point, read-only root, uid 10001
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile"
INSTALL_SCRIPT = REPO_ROOT / "image" / "install.sh"

DEBIAN_SUITE = "bookworm"  # the Dockerfile's base: python:3.12-slim-bookworm
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# As the slim images do: no manuals, no documentation (but the licences), no translations.
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--mode=root",
    "--format=directory",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
)
# Bump when the way a tree is made changes in a way its inputs do not show.
BUILD_FORMAT = "1"
# Files and folders the image is made of (the Dockerfile's COPY lines and its own inputs).
IMAGE_INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "image/install.sh",
    "policies",
    "webhook",
)
KEEP_TREES = 2  # installed trees kept in the cache (the newest)
TOOLS = ("mmdebstrap", "unshare", "nsenter", "setpriv", "chroot", "mount", "ip", "env")

Log = Callable[[str], None]


class RootfsError(RuntimeError):
    """A step of the daemonless build or run failed; the message says which and why."""


# --------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class ImageConfig:
    """What the Dockerfile's final stage tells a runtime (the image config)."""

    env: dict[str, str]
    uid: int
    gid: int
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    labels: dict[str, str]
    args: dict[str, str]
    runs: list[str]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) per instruction: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _key_values(rest: str, args: Mapping[str, str]) -> dict[str, str]:
    """`K=V K2="V 2"` of ENV, LABEL and ARG, with ${ARG} substituted."""
    values: dict[str, str] = {}
    for token in shlex.split(rest):
        key, sep, value = token.partition("=")
        if not sep:
            raise RootfsError(f"Dockerfile: only the KEY=VALUE form is read, not {token!r}")
        values[key] = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], ""), value)
    return values


def read_image_config(dockerfile: Path = DOCKERFILE) -> ImageConfig:
    """The final stage's ENV, USER, WORKDIR, ENTRYPOINT, CMD, LABEL, ARG and RUN lines."""
    stages: list[list[tuple[str, str]]] = []
    for word, rest in _instructions(dockerfile.read_text()):
        if word == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((word, rest))
    if not stages:
        raise RootfsError(f"{dockerfile}: no FROM")
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    args: dict[str, str] = {}
    runs: list[str] = []
    user = "0:0"
    workdir = "/"
    entrypoint: list[str] = []
    cmd: list[str] = []
    for word, rest in stages[-1]:
        if word == "ARG":
            args.update(_key_values(rest, args))
        elif word == "ENV":
            env.update(_key_values(rest, args))
        elif word == "LABEL":
            labels.update(_key_values(rest, args))
        elif word == "USER":
            user = rest
        elif word == "WORKDIR":
            workdir = rest
        elif word in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                value = None
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise RootfsError(f"Dockerfile: {word} must be in the JSON (exec) form")
            if word == "ENTRYPOINT":
                entrypoint = value
            else:
                cmd = value
        elif word == "RUN":
            runs.append(rest)
    uid_text, _, gid_text = user.partition(":")
    if not uid_text.isdigit() or not (gid_text or uid_text).isdigit():
        raise RootfsError(f"Dockerfile: USER must be numeric UID:GID, not {user!r}")
    return ImageConfig(
        env=env,
        uid=int(uid_text),
        gid=int(gid_text or uid_text),
        workdir=workdir,
        entrypoint=entrypoint,
        cmd=cmd,
        labels=labels,
        args=args,
        runs=runs,
    )


# --------------------------------------------------------------------------- tools


def missing_tools() -> list[str]:
    """What this host lacks for the daemonless build and run (empty: nothing)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.insert(0, "root (mount, chroot and mmdebstrap's root mode need uid 0)")
    return missing


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RootfsError(f"{name} is not installed (apt-get install it; see docs/image.md)")
    return path


def _run(argv: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise RootfsError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result


# --------------------------------------------------------------------------- cache


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "argo-plugin-guard" / "image-rootfs"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One build at a time per cache (several test runs may share it)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _digest(parts: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:20]


def _apt_sources() -> list[str]:
    """This host's Debian sources, so the tree comes from the archive apt here uses."""
    sources = [p for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    sources = [p for p in sources if "debian" in p.read_text(errors="replace")]
    legacy = Path("/etc/apt/sources.list")
    if not sources and legacy.is_file() and legacy.read_text().strip():
        sources = [legacy]
    return [str(p) for p in sources]


def base_key() -> str:
    sources = [Path(p).read_bytes() for p in _apt_sources()]
    parts = [BUILD_FORMAT.encode(), DEBIAN_SUITE.encode(), *map(str.encode, DEBIAN_PACKAGES)]
    return _digest([*parts, *map(str.encode, MMDEBSTRAP_OPTIONS), *sources])


def image_key(repo: Path = REPO_ROOT) -> str:
    """A digest of every file the image is made of (the base tree's key included)."""
    parts = [base_key().encode()]
    for name in IMAGE_INPUTS:
        path = repo / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if not file.is_file() or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            parts += [str(file.relative_to(repo)).encode(), file.read_bytes()]
    return _digest(parts)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Built:
    rootfs: Path
    key: str
    cached: bool
    seconds: float
    size_bytes: int
    python: str


def _chroot_python(root: Path, code: str) -> str:
    return _run(
        [_tool("chroot"), str(root), "/usr/bin/python3", "-I", "-c", code],
        "python3 in the root filesystem",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    ).stdout.strip()


def build_base(cache: Path, log: Log) -> Path:
    """The Debian tree (mmdebstrap): about a minute and 50 MB of packages when cold."""
    target = cache / f"base-{base_key()}"
    if target.is_dir():
        return target
    for stale in cache.glob("base-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = cache / f".base-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    log(f"mmdebstrap {DEBIAN_SUITE} + {', '.join(DEBIAN_PACKAGES)} -> {target}")
    try:
        _run(
            [
                _tool("mmdebstrap"),
                *MMDEBSTRAP_OPTIONS,
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(work),
                *_apt_sources(),
            ],
            "mmdebstrap",
            timeout=1200,
        )
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _manylinux_tags(libc: str, machine: str) -> list[str]:
    """Every manylinux tag a C library of version `libc` runs (pip expands none of them)."""
    major, minor = (int(part) for part in libc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{machine}" for m, name in legacy.items() if m <= minor]


def build_wheels(repo: Path, root: Path, dest: Path) -> None:
    """The `build` stage: the project's wheel, then every dependency's wheel for the
    Python and C library of `root` (whatever Python this host runs)."""
    info = json.loads(
        _chroot_python(
            root,
            "import json, platform, sys; "
            "print(json.dumps([f'{sys.version_info[0]}.{sys.version_info[1]}', "
            "platform.libc_ver()[1], platform.machine()]))",
        )
    )
    version, libc, machine = info
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(repo)], "pip wheel")
    (wheel,) = dest.glob("argo_plugin_guard-*.whl")
    _run(
        [
            *pip,
            "download",
            "--quiet",
            "--dest",
            str(dest),
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            version,
            *(arg for tag in _manylinux_tags(libc, machine) for arg in ("--platform", tag)),
            str(wheel),
        ],
        "pip download (the dependency wheels)",
    )


def build(repo: Path = REPO_ROOT, cache: Path | None = None, log: Log = print) -> Built:
    """The image's final filesystem; from the cache when its inputs are unchanged."""
    started = time.monotonic()
    missing = missing_tools()
    if missing:
        raise RootfsError("missing for the daemonless image build: " + ", ".join(missing))
    read_image_config(repo / "Dockerfile")  # fails early on a Dockerfile it cannot read
    cache = cache or cache_root()
    key = image_key(repo)
    target = cache / f"image-{key}"
    with _locked(cache):
        for leftover in [*cache.glob(".image-*"), *cache.glob(".base-*")]:
            shutil.rmtree(leftover, ignore_errors=True)  # a build killed midway (we hold the lock)
        cached = target.is_dir()
        if not cached:
            base = build_base(cache, log)
            work = cache / f".image-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            try:
                log(f"install.sh into a copy of {base.name} -> {target}")
                _run(["cp", "-a", "--reflink=auto", str(base), str(work)], "copying the base")
                stage = work / ".build"
                (stage / "wheels").mkdir(parents=True)
                build_wheels(repo, work, stage / "wheels")
                shutil.copy2(repo / "image" / "install.sh", stage / "install.sh")
                _install(work)
                shutil.rmtree(stage)
                work.rename(target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            trees = sorted(cache.glob("image-*"), key=lambda p: p.stat().st_mtime)
            for stale in trees[:-KEEP_TREES]:
                shutil.rmtree(stale, ignore_errors=True)
        os.utime(target)
    python = _chroot_python(target, "import sys; print(sys.version.split()[0])")
    return Built(target, key, cached, time.monotonic() - started, _tree_size(target), python)


def _install(root: Path) -> None:
    """install.sh chrooted into `root`, with a clean environment (none of this host's pip
    settings) and a /proc of its own."""
    script = (
        'mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh /.build/install.sh /.build/wheels'
    )
    _run(
        [_tool("unshare"), "--mount", "--pid", "--fork", "--", "sh", "-c", script, "sh", str(root)],
        "image/install.sh in the root filesystem",
        env={
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
        },
        timeout=600,
    )


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class Mount:
    """A pod volume: a host folder bind-mounted (read-only by default), or a tmpfs."""

    target: str
    source: Path | None = None
    read_only: bool = True
    size_bytes: int | None = None  # tmpfs only


@dataclass
class RunSpec:
    argv: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    workdir: str = "/"
    read_only_root: bool = True
    host_network: bool = False


def image_run_spec(config: ImageConfig, args: Sequence[str] | None = None) -> RunSpec:
    """`docker run --read-only --tmpfs /tmp --tmpfs /dev/shm IMAGE [ARGS]`."""
    return RunSpec(
        argv=[*config.entrypoint, *(config.cmd if args is None else args)],
        env=dict(config.env),
        uid=config.uid,
        gid=config.gid,
        mounts=[Mount("/tmp", read_only=False), Mount("/dev/shm", read_only=False)],
        workdir=config.workdir,
    )


DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _launch_script(rootfs: Path, scratch: Path, spec: RunSpec) -> str:
    if spec.workdir != "/":
        raise RootfsError("only WORKDIR / is supported by the daemonless runner")
    q = shlex.quote
    merged = scratch / "merged"
    m = q(str(merged))
    lines = [
        "set -eu",
        *([] if spec.host_network else ["ip link set lo up"]),
        f"mkdir -p {q(str(scratch / 'upper'))} {q(str(scratch / 'work'))} {m}",
        "mount -t overlay overlay -o "
        + q(f"lowerdir={rootfs},upperdir={scratch / 'upper'},workdir={scratch / 'work'}")
        + f" {m}",
        f"mount -t proc -o nosuid,nodev,noexec proc {m}/proc",
        f"mount -t tmpfs -o nosuid,mode=0755,size=1m tmpfs {m}/dev",
        f"for d in {' '.join(DEVICES)}; do touch {m}/dev/$d; mount --bind /dev/$d {m}/dev/$d; done",
        f"ln -s /proc/self/fd {m}/dev/fd",
        *(
            f"ln -s /proc/self/fd/{n} {m}/dev/{name}"
            for n, name in enumerate(("stdin", "stdout", "stderr"))
        ),
    ]
    for mount in sorted(spec.mounts, key=lambda mt: mt.target.count("/")):
        if not mount.target.startswith("/") or ".." in mount.target.split("/"):
            raise RootfsError(f"mount target {mount.target!r} is not an absolute path")
        path = q(str(merged) + mount.target)
        lines.append(f"mkdir -p {path}")
        if mount.source is None:
            size = f",size={mount.size_bytes}" if mount.size_bytes else ""
            lines.append(f"mount -t tmpfs -o nosuid,nodev,mode=1777{size} tmpfs {path}")
        else:
            lines.append(f"mount --bind {q(str(mount.source))} {path}")
        if mount.read_only:
            lines.append(f"mount -o remount,bind,ro {path}")
    if spec.read_only_root:
        lines.append(f"mount -o remount,ro {m}")
    env = [f"{k}={v}" for k, v in spec.env.items()]
    groups = ",".join(str(g) for g in (spec.groups or [spec.gid]))
    lines.append(
        " ".join(
            [
                "exec",
                q(_tool("env")),
                "-i",
                *map(q, env),
                q(_tool("setpriv")),
                "--no-new-privs",
                "--",
                q(_tool("chroot")),
                f"--userspec={spec.uid}:{spec.gid}",
                f"--groups={groups}",
                m,
                *map(q, spec.argv),
            ]
        )
    )
    return "\n".join(lines) + "\n"


class Container:
    """A command started from the root filesystem; stop() (or the context) ends it all."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path | None, scratch: Path) -> None:
        self.proc = proc
        self.log = log
        self.scratch = scratch

    @property
    def pid(self) -> int:
        """The host pid of the container's first process (pid 1 in its namespace)."""
        deadline = time.monotonic() + 10
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                found = children.read_text().split()
                if found:
                    return int(found[0])
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RootfsError(f"the container did not start:\n{self.output()}")

    def processes(self) -> list[int]:
        """Host pids of every process in the container (pid 1 and its descendants)."""
        found: list[int] = []
        todo = [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            with contextlib.suppress(OSError):
                todo += [
                    int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                ]
        return found

    def output(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        port: int,
        ca: Path,
        server_name: str,
        timeout: float = 10,
    ) -> tuple[int, Any]:
        """An HTTPS request from inside the container's network namespace (its loopback)."""
        argv = [
            _tool("nsenter"),
            f"--net=/proc/{self.pid}/ns/net",
            "--",
            sys.executable,
            "-I",
            str(Path(__file__).resolve()),
            "request",
            "--port",
            str(port),
            "--ca",
            str(ca),
            "--server-name",
            server_name,
            "--timeout",
            str(timeout),
            method,
            path,
        ]
        data = json.dumps(body) if body is not None else ""
        result = subprocess.run(
            argv, input=data, capture_output=True, text=True, timeout=timeout + 20, check=False
        )
        if result.returncode != 0:
            raise OSError(f"request {method} {path} failed: {result.stderr.strip()[-500:]}")
        answer = json.loads(result.stdout)
        return int(answer["status"]), answer["body"]

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM to pid 1 (a graceful stop, as the kubelet does); SIGKILL after `timeout`.
        Returns pid 1's exit status when it stopped on SIGTERM, else None."""
        if self.proc.poll() is None:
            with contextlib.suppress(RootfsError, ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        if self.proc.poll() is None:
            self.proc.kill()  # unshare --kill-child: the whole PID namespace goes with it
            self.proc.wait(10)
            return None
        return self.proc.returncode


@contextlib.contextmanager
def start(
    rootfs: Path, spec: RunSpec, scratch: Path, *, capture: bool = True
) -> Iterator[Container]:
    """Run spec.argv from `rootfs` in new mount, PID (and network) namespaces; its output
    goes to `scratch`/container.log (or to this process's, with capture=False)."""
    scratch.mkdir(parents=True, exist_ok=True)
    launch = scratch / "launch.sh"
    launch.write_text(_launch_script(rootfs, scratch, spec))
    namespaces = ["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private"]
    if not spec.host_network:
        namespaces.append("--net")
    log = scratch / "container.log" if capture else None
    with open(log or os.devnull, "wb") as out:
        proc = subprocess.Popen(
            [_tool("unshare"), *namespaces, "--", "sh", str(launch)],
            stdin=subprocess.DEVNULL,
            stdout=out if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            start_new_session=capture,
        )
    container = Container(proc, log, scratch)
    try:
        yield container
    finally:
        container.stop()


# --------------------------------------------------------------------------- CLI


def _request_main(ns: argparse.Namespace) -> int:
    """One HTTPS request on 127.0.0.1 (run inside the container's network namespace)."""
    import http.client
    import socket
    import ssl

    context = ssl.create_default_context(cafile=ns.ca)
    raw = socket.create_connection(("127.0.0.1", ns.port), timeout=ns.timeout)
    conn = http.client.HTTPConnection(ns.server_name, ns.port, timeout=ns.timeout)
    conn.sock = context.wrap_socket(raw, server_hostname=ns.server_name)
    data = sys.stdin.read().encode()
    headers = {"Content-Type": "application/json"} if data else {}
    conn.request(ns.method, ns.path, body=data or None, headers=headers)
    resp = conn.getresponse()
    payload = resp.read().decode(errors="replace")
    body: Any = payload
    if resp.getheader("Content-Type", "").startswith("application/json"):
        body = json.loads(payload)
    print(json.dumps({"status": resp.status, "body": body}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image/rootfs.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or reuse) the root filesystem; print its path")
    run = sub.add_parser("run", help="run the image's entry point from it (read-only root)")
    run.add_argument("args", nargs="*", help="arguments instead of the image's CMD")
    request = sub.add_parser("request", help=argparse.SUPPRESS)
    request.add_argument("--port", type=int, required=True)
    request.add_argument("--ca", required=True)
    request.add_argument("--server-name", required=True)
    request.add_argument("--timeout", type=float, default=10)
    request.add_argument("method")
    request.add_argument("path")
    ns = parser.parse_args(argv)
    if ns.command == "request":
        return _request_main(ns)
    try:
        built = build(log=lambda line: print(line, file=sys.stderr))
        if ns.command == "build":
            state = "cached" if built.cached else "built"
            print(
                f"{state} in {built.seconds:.1f} s: {built.size_bytes / 2**20:.0f} MiB, "
                f"Python {built.python}",
                file=sys.stderr,
            )
            print(built.rootfs)
            return 0
        spec = image_run_spec(read_image_config(), ns.args or None)
        spec.host_network = True
        with (
            tempfile.TemporaryDirectory(prefix="plugin-guard-rootfs-") as scratch,
            start(built.rootfs, spec, Path(scratch), capture=False) as container,
        ):
            with contextlib.suppress(KeyboardInterrupt):
                container.proc.wait()
            return container.proc.returncode or 0
    except RootfsError as exc:
        print(f"image/rootfs.py: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
