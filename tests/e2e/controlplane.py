"""A real etcd + kube-apiserver on loopback, as controller-runtime's envtest runs them.

No kubelet, no controllers: objects are stored and admitted (RBAC, admission webhooks,
Pod Security admission, CRD validation, status subresources, resourceVersion conflicts)
but nothing reconciles them (no pod runs, a deleted namespace stays Terminating: tests
use fresh names instead of deleting).

Everything lives in one temporary folder named after this process (certificates, the
token file, etcd's data, kubeconfigs, kubectl's cache, the logs). `stop()` ends both
servers (their whole process groups) and removes the folder; it also runs at interpreter
exit, the servers die with this process (PR_SET_PDEATHSIG) if it is killed, and a later
start removes folders left by processes that no longer exist.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .assets import Assets

WORKDIR_PREFIX = "argo-plugin-guard-e2e-"
START_TIMEOUT = 90.0  # seconds; a cold start on a loaded 2-core machine takes ~10 s
# The proxy variables would send kubectl's and the API server's loopback calls nowhere good.
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class User:
    """A token-file user of the API server (`--token-auth-file`)."""

    name: str
    groups: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        """The user a ServiceAccount's token authenticates as, so RBAC subjects of kind
        ServiceAccount apply to it exactly as in a cluster."""
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        )


ADMIN = User("e2e-admin", ("system:masters",))


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA and the serving certificates it signs (EC P-256, valid for a day)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, common_name: str) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, dns_names: Sequence[str], ips: Sequence[str]) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) of a serving certificate for these names."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, (list(dns_names) + list(ips))[0])]
        )
        alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem

    def write_serving_pair(
        self, folder: Path, stem: str, dns_names: Sequence[str] = ("localhost",)
    ) -> tuple[Path, Path]:
        """Write `<stem>.crt` / `<stem>.key` for localhost, 127.0.0.1 and ::1."""
        cert_pem, key_pem = self.issue(dns_names, ["127.0.0.1", "::1"])
        cert_file, key_file = folder / f"{stem}.crt", folder / f"{stem}.key"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        return cert_file, key_file


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies (Linux), so a killed
    pytest leaves no server behind; and a process group of its own for stop()."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env.update(extra or {})
    return env


_RUNNING: set[ManagedProcess] = set()


class ManagedProcess:
    """A child process in its own process group, logging to a file, stopped as a group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        separate_stdout: bool = False,
    ) -> None:
        """stderr goes to `log_file`; stdout too, or with `separate_stdout` to
        `<log_file>.stdout` (servers whose stderr must be JSON lines only)."""
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self.stdout_file = log_file.with_name(log_file.name + ".stdout")
        self._log: IO[bytes] = log_file.open("ab")
        self._out: IO[bytes] | None = self.stdout_file.open("ab") if separate_stdout else None
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out if self._out is not None else self._log,
            stderr=self._log,
            env=dict(env) if env is not None else child_environment(),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the group, SIGKILL after `grace` seconds; returns the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        # members of the group that outlived the leader
        self.signal(signal.SIGKILL)
        self._log.close()
        if self._out is not None:
            self._out.close()
        _RUNNING.discard(self)
        return self.process.returncode


def _stop_all_at_exit() -> None:
    for process in list(_RUNNING):
        process.stop(grace=3)


atexit.register(_stop_all_at_exit)


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.1,
    alive: Callable[[], str | None] | None = None,
) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds, or at once when
    `alive` reports that the thing waited for has died (its message)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if alive is not None and (dead := alive()) is not None:
            raise RuntimeError(f"{what}: {dead}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def json_log_lines(path: Path) -> list[dict[str, Any]]:
    """Every whole non-empty line of a server's stderr log so far, parsed (a line still
    being written is left for the next read); fails on a line that is not one JSON
    object (the product's servers log nothing else on stderr)."""
    text = path.read_text(errors="replace")
    lines = [line for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name}: a stderr line is not JSON: {line[:300]}") from None
        if not isinstance(entry, dict):
            raise AssertionError(f"{path.name}: a stderr line is not an object: {line[:300]}")
        parsed.append(entry)
    return parsed


def _http_ok(url: str, context: ssl.SSLContext | None, headers: Mapping[str, str]) -> bool:
    request = urllib.request.Request(url, headers=dict(headers))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def remove_stale_workdirs(tmp: Path) -> None:
    """Folders of earlier runs whose process is gone (killed before it could clean up)."""
    for folder in tmp.glob(f"{WORKDIR_PREFIX}*"):
        try:
            pid = int(folder.name[len(WORKDIR_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


# --------------------------------------------------------------------------- control plane


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str
    argv: list[str]

    def check(self) -> KubectlResult:
        if self.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(self.argv)} failed ({self.returncode}):\n{self.stderr}"
            )
        return self

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


class ControlPlane:
    """etcd + kube-apiserver on free loopback ports, RBAC on, token-file users."""

    def __init__(self, assets: Assets, users: Iterable[User] = ()) -> None:
        self.assets = assets
        self.users: dict[str, User] = {ADMIN.name: ADMIN}
        for user in users:
            self.users[user.name] = user
        tmp = Path(tempfile.gettempdir())
        remove_stale_workdirs(tmp)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=tmp))
        self.ca = CertificateAuthority.create("e2e-kube-apiserver-ca")
        self.port = 0
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self._stopped = False
        atexit.register(self.stop)

    # ---- life cycle

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    def start(self, timeout: float = START_TIMEOUT) -> ControlPlane:
        started = time.monotonic()
        try:
            self._write_files()
            self._start_etcd(timeout)
            self._start_apiserver(timeout - (time.monotonic() - started))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for process in (self.apiserver, self.etcd):
            if process is not None:
                process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def logs(self) -> str:
        parts = []
        for process in (self.etcd, self.apiserver):
            if process is not None:
                parts.append(f"--- {process.name} ({process.log_file}):\n{process.log_tail()}")
        return "\n".join(parts)

    def _write_files(self) -> None:
        self.ca_file.write_bytes(self.ca.pem)
        self.serving_cert, self.serving_key = self.ca.write_serving_pair(
            self.workdir, "apiserver", ("localhost", "kubernetes", "kubernetes.default.svc")
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key_file = self.workdir / "sa.key"
        self.sa_key_file.write_bytes(
            sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.sa_key_file.chmod(0o600)
        self.sa_pub_file = self.workdir / "sa.pub"
        self.sa_pub_file.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.token_file = self.workdir / "tokens.csv"
        lines = []
        for number, user in enumerate(self.users.values()):
            groups = ",".join(user.groups)
            lines.append(f'{user.token},{user.name},uid-{number},"{groups}"')
        self.token_file.write_text("\n".join(lines) + "\n")
        self.token_file.chmod(0o600)

    def _start_etcd(self, timeout: float) -> None:
        client, peer = free_port(), free_port()
        data = self.workdir / "etcd"
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(self.assets.etcd),
                "--name=e2e",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                # test data: no fsync (much faster on a shared disk), nothing to keep
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            self.workdir / "etcd.log",
        )
        self.etcd_url = f"http://127.0.0.1:{client}"
        wait_until(
            lambda: _http_ok(f"{self.etcd_url}/health", None, {}),
            timeout,
            "etcd",
            alive=self._died(self.etcd),
        )

    def _start_apiserver(self, timeout: float) -> None:
        self.port = free_port()
        self.apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(self.assets.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={self.serving_cert}",
                f"--tls-private-key-file={self.serving_key}",
                f"--token-auth-file={self.token_file}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={self.sa_pub_file}",
                f"--service-account-signing-key-file={self.sa_key_file}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # no token controller creates ServiceAccounts here (as in envtest)
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
            self.workdir / "kube-apiserver.log",
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Authorization": f"Bearer {ADMIN.token}"}
        wait_until(
            lambda: _http_ok(f"{self.url}/readyz", context, headers),
            timeout,
            "kube-apiserver",
            interval=0.25,
            alive=self._died(self.apiserver),
        )

    def _died(self, process: ManagedProcess) -> Callable[[], str | None]:
        def check() -> str | None:
            if process.alive():
                return None
            return f"exited with {process.process.returncode}:\n{process.log_tail()}"

        return check

    def server_version(self) -> str:
        """The API server's version without the `v` (e.g. `1.36.2`), for `helm template
        --kube-version`."""
        result = self.kubectl("version", "-o", "json", check=True).json()
        return str(result["serverVersion"]["gitVersion"]).lstrip("v").split("-")[0]

    # ---- clients

    def kubeconfig(self, user: User | str = ADMIN) -> Path:
        """A kubeconfig file for a token-file user (written once, inside the work folder)."""
        user = self.users[user] if isinstance(user, str) else user
        if user.name not in self.users:
            raise KeyError(f"{user.name} is not a user of this API server (see e2e USERS)")
        safe = "".join(c if c.isalnum() else "-" for c in user.name)
        path = self.workdir / "kubeconfigs" / f"{safe}.yaml"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": self.url,
                            "certificate-authority": str(self.ca_file),
                        },
                    }
                ],
                "users": [{"name": user.name, "user": {"token": user.token}}],
                "contexts": [
                    {
                        "name": "e2e",
                        "context": {"cluster": "e2e", "user": user.name, "namespace": "default"},
                    }
                ],
                "current-context": "e2e",
            }
            path.write_text(yaml.safe_dump(config))
            path.chmod(0o600)
        return path

    def environment(self, user: User | str = ADMIN) -> dict[str, str]:
        """The environment for a child process talking to this API server as `user`."""
        return child_environment(
            {
                "KUBECONFIG": str(self.kubeconfig(user)),
                "KUBECACHEDIR": str(self.workdir / "kubectl-cache"),
                "HOME": str(self.workdir / "home"),
            }
        )

    def kubectl(
        self,
        *args: str,
        user: User | str = ADMIN,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60,
    ) -> KubectlResult:
        """Run the real kubectl as `user`; the result keeps what kubectl printed."""
        argv = [str(self.assets.kubectl), *args]
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=self.environment(user),
            timeout=timeout,
            check=False,
        )
        result = KubectlResult(proc.returncode, proc.stdout, proc.stderr, list(args))
        return result.check() if check else result

    def apply(self, documents: Sequence[Mapping[str, Any]] | str, **kwargs: Any) -> KubectlResult:
        text = (
            documents
            if isinstance(documents, str)
            else yaml.safe_dump_all([dict(d) for d in documents])
        )
        return self.kubectl("apply", "-f", "-", input=text, **kwargs)
