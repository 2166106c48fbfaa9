"""The container image, proven without a container engine.

No Docker daemon and no image registry can be reached here, so `image/rootfs.py` builds
the image's final filesystem without them (a Debian bookworm tree from mmdebstrap, then
image/install.sh, the script the Dockerfile's final stage RUNs) and runs it the way a
runtime runs the chart's pod: the Deployment rendered by the real `helm`, its command,
args and env over the image's ENV, its securityContext's uid/gid 10001 with a read-only
root, its Secret volume and in-memory emptyDirs, in namespaces of its own. The answers
are compared with the engine's own answer to the same AdmissionReview.

The build needs root, mmdebstrap, unshare, nsenter, setpriv and ip (`make test` installs
mmdebstrap when it runs as root). Without them the tests skip with one line, except in
CI (CI=true), where they fail: there the image must be proven.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import os
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import webhook
from webhook.admission import validate
from webhook.executor_plugin import from_manifest, to_configmap
from webhook.policy import load_policies

from ..chart.conftest import CHART, FULLNAME, NAMESPACE, Helm, find, find_helm

REPO_ROOT = Path(__file__).resolve().parents[2]
RISKY_REVIEW = REPO_ROOT / "examples" / "review-risky-plugin.json"
HARDENED_PLUGIN = REPO_ROOT / "examples" / "hardened-plugin" / "plugin.yaml"
PUBLISHED_REPOSITORY = "ghcr.io/argo-plugin-guard/argo-plugin-guard"
SOURCE_URL = "https://github.com/argo-plugin-guard/argo-plugin-guard"


def _load_rootfs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_rootfs", REPO_ROOT / "image" / "rootfs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rootfs = _load_rootfs()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def built() -> Any:
    missing = rootfs.missing_tools()
    if missing:
        message = (
            f"daemonless image build needs {', '.join(missing)} "
            "(apt-get install mmdebstrap util-linux iproute2; docs/image.md)"
        )
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    try:
        return rootfs.build(log=lambda line: print(line, file=sys.stderr))
    except rootfs.RootfsError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def config() -> Any:
    return rootfs.read_image_config(REPO_ROOT / "Dockerfile")


# --------------------------------------------------------------------------- the Dockerfile


def test_dockerfile_final_stage_runs_install_sh_as_uid_10001_with_oci_labels(config: Any) -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    assert (config.uid, config.gid) == (10001, 10001)
    assert config.entrypoint == ["plugin-guard"]
    assert config.workdir == "/"
    assert config.env["PYTHONDONTWRITEBYTECODE"] == "1"
    # The one install step is install.sh, the script the daemonless build runs too.
    assert [run for run in config.runs if "install.sh" in run] == config.runs
    assert len(config.runs) == 1 and "source=image/install.sh" in config.runs[0]

    labels = config.labels
    version = project["version"]
    assert labels["org.opencontainers.image.version"] == version == webhook.__version__
    assert chart["appVersion"] == version  # image.tag defaults to appVersion
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert labels["org.opencontainers.image.source"] == SOURCE_URL
    assert SOURCE_URL in chart["sources"]
    assert values["image"]["repository"] == PUBLISHED_REPOSITORY


def test_dockerignore_keeps_what_the_build_stage_copies() -> None:
    """The context is an allow-list: every COPY source must be re-included by it."""
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines
    copied: set[str] = set()
    for word, rest in rootfs._instructions((REPO_ROOT / "Dockerfile").read_text()):
        if word == "COPY" and "--from" not in rest:
            copied.update(part.rstrip("/") for part in rest.split()[:-1])
        for option in rest.split() if word == "RUN" else []:
            if option.startswith("--mount="):
                fields = dict(f.split("=", 1) for f in option.removeprefix("--mount=").split(","))
                if "from" not in fields:  # a bind mount of the build context
                    copied.add(fields["source"])
    assert copied and copied <= allowed, copied - allowed
    for name in copied:
        assert (REPO_ROOT / name).exists(), name


def test_release_workflow_publishes_where_the_chart_pulls_from() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "release.yaml").read_text())
    steps = {
        job: {step.get("uses", step.get("name", "")).split("@")[0]: step for step in spec["steps"]}
        for job, spec in workflow["jobs"].items()
    }
    build = steps["image"]["docker/build-push-action"]["with"]
    assert "docker/setup-qemu-action" in steps["image"]
    assert workflow["env"]["PLATFORMS"] == "linux/amd64,linux/arm64"
    assert build["platforms"] == "${{ env.PLATFORMS }}" and build["push"] is True
    assert build["file"] == "Dockerfile" and "VERSION=" in build["build-args"]
    images = steps["image"]["docker/metadata-action"]["with"]["images"]
    # Run by the argo-plugin-guard organisation, it pushes the chart's default repository.
    published = images.replace("${{ env.OWNER }}", "argo-plugin-guard").replace(
        "${{ env.IMAGE_NAME }}", workflow["env"]["IMAGE_NAME"]
    )
    assert published == PUBLISHED_REPOSITORY
    chart_script = json.dumps(workflow["jobs"]["chart"])
    assert "helm package" in chart_script and "helm push" in chart_script
    assert "oci://ghcr.io/${OWNER}/charts" in chart_script
    assert workflow["jobs"]["chart"]["needs"] == "image"
    assert workflow["jobs"]["image"]["needs"] == "test"


# --------------------------------------------------------------------------- the filesystem


def test_installed_tree_has_the_entry_point_user_and_no_build_tools(built: Any) -> None:
    root = built.rootfs
    assert os.readlink(root / "usr/local/bin/plugin-guard") == "/opt/plugin-guard/bin/plugin-guard"
    passwd = (root / "etc/passwd").read_text().splitlines()
    assert "plugin-guard:x:10001:10001::/nonexistent:/usr/sbin/nologin" in passwd
    site = next((root / "opt/plugin-guard/lib").glob("python3.*/site-packages"))
    assert (site / "webhook" / "_bundled_policies").is_dir()
    # Bytecode is compiled at build time: the read-only root cannot take it later.
    assert list((site / "webhook" / "__pycache__").glob("cli.*.pyc"))
    # No pip, no caches, no compilers, nothing left from the build.
    assert not (site / "pip").exists() and not list(site.glob("pip-*.dist-info"))
    assert not (root / "root/.cache").exists() and not (root / ".build").exists()
    for compiler in ("gcc", "cc", "c++", "make"):
        assert not (root / "usr/bin" / compiler).exists(), compiler
    assert list((root / "tmp").iterdir()) == []


# --------------------------------------------------------------------------- running it


def _certificates(dns_name: str) -> tuple[bytes, bytes, bytes]:
    """(CA, serving certificate, key) PEM for `dns_name`, as an existing Secret holds them."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("image-test-ca"))
        .issuer_name(name("image-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(dns_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _secret_volume(folder: Path, files: Mapping[str, bytes], mode: int, gid: int) -> None:
    """A Secret volume as the kubelet writes it: `..data` -> a timestamped folder, files
    owned root:fsGroup with the volume's defaultMode."""
    stamp = folder / "..2026_12_04_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for path in (folder, stamp):
        path.chmod(0o755)
    for name, content in files.items():
        (stamp / name).write_bytes(content)
        os.chown(stamp / name, 0, gid)
        (stamp / name).chmod(mode)
        (folder / name).symlink_to(f"..data/{name}")
    (folder / "..data").symlink_to(stamp.name)


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def pod_run_spec(
    deployment: Mapping[str, Any], image: Any, secrets: Mapping[str, Mapping[str, bytes]], tmp: Path
) -> Any:
    """What the kubelet and the runtime make of the Deployment's one container."""
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    security = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
    fs_group = pod["securityContext"]["fsGroup"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = []
    for mount in c["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            secret = secrets[volume["secret"]["secretName"]]
            folder = tmp / "volumes" / mount["name"]
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in secret]
            files = {item["path"]: secret[item["key"]] for item in items}
            _secret_volume(folder, files, volume["secret"].get("defaultMode", 0o644), fs_group)
            mounts.append(rootfs.Mount(mount["mountPath"], folder, read_only=True))
        elif "emptyDir" in volume:
            assert volume["emptyDir"].get("medium") == "Memory", volume
            size = _bytes(volume["emptyDir"]["sizeLimit"])
            mounts.append(rootfs.Mount(mount["mountPath"], None, False, size))
        else:
            raise AssertionError(f"no stand-in for volume {volume}")
    env = dict(image.env)
    env.update({var["name"]: var["value"] for var in c.get("env", [])})
    return rootfs.RunSpec(
        argv=[*c["command"], *c["args"]],  # command replaces ENTRYPOINT, args replace CMD
        env=env,
        uid=security["runAsUser"],
        gid=security["runAsGroup"],
        groups=sorted({security["runAsGroup"], fs_group}),
        mounts=mounts,
        workdir=c.get("workingDir", image.workdir),
        read_only_root=security["readOnlyRootFilesystem"],
    )


def _wait_healthy(container: Any, **connect: Any) -> None:
    deadline = time.monotonic() + 60
    while True:
        if container.proc.poll() is not None:
            pytest.fail(f"the server exited:\n{container.output()}", pytrace=False)
        try:
            if container.request("GET", "/healthz", **connect)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not come up:\n{container.output()}", pytrace=False)
        time.sleep(0.3)


def _process_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _root_mount_options(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[5].split(",")
    raise AssertionError(f"no / in the mountinfo of {pid}")


def _expected(review: Mapping[str, Any]) -> Any:
    """The engine's own answer (the bundled policies, no registry), computed here."""
    return validate(review, evaluate=load_policies().evaluate).review


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(find_helm(), tmp_path_factory.mktemp("helm-home"))


@dataclass
class ChartPod:
    container: Any  # rootfs.Container
    spec: Any  # rootfs.RunSpec
    connect: dict[str, Any]

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.container.request(method, path, body, **self.connect)


@pytest.fixture
def chart_pod(helm: Helm, built: Any, config: Any, tmp_path: Path) -> Iterator[ChartPod]:
    service_host = f"{FULLNAME}.{NAMESPACE}.svc"
    ca, cert, key = _certificates(service_host)
    docs = helm.template(
        "--set",
        "tls.existingSecret=webhook-tls",
        "--set",
        f"tls.caBundle={base64.b64encode(ca).decode()}",
    )
    deployment = find(docs, "Deployment")
    webhook_config = find(docs, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(webhook_config["caBundle"]))
    service = webhook_config["service"]
    spec = pod_run_spec(
        deployment, config, {"webhook-tls": {"tls.crt": cert, "tls.key": key}}, tmp_path
    )
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    connect = {
        "port": c["ports"][0]["containerPort"],  # the container's own: it has its own network
        "ca": tmp_path / "ca.crt",  # what the API server trusts: the caBundle
        "server_name": f"{service['name']}.{service['namespace']}.svc",
    }
    with rootfs.start(built.rootfs, spec, tmp_path / "container") as container:
        _wait_healthy(container, **connect)
        yield ChartPod(container, spec, connect)


def test_chart_pod_answers_reviews_over_tls_as_uid_10001_on_a_read_only_root(
    chart_pod: ChartPod,
) -> None:
    assert chart_pod.spec.read_only_root and chart_pod.spec.uid == 10001

    status, ready = chart_pod.request("GET", "/readyz")
    assert status == 200 and ready["status"] == "ready", ready
    assert ready["policies"] == len(load_policies().policy_ids)  # the bundled set, from the wheel

    risky = json.loads(RISKY_REVIEW.read_text())
    status, answer = chart_pod.request("POST", "/validate", risky)
    assert status == 200
    assert answer["response"]["uid"] == risky["request"]["uid"]
    assert answer["response"]["allowed"] is False
    assert answer == _expected(risky)

    hardened = to_configmap(from_manifest(yaml.safe_load(HARDENED_PLUGIN.read_text())))
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            **{k: risky["request"][k] for k in ("kind", "resource", "namespace", "operation")},
            "uid": "image-test-hardened",
            "name": hardened["metadata"]["name"],
            "object": hardened,
        },
    }
    status, answer = chart_pod.request("POST", "/validate", review)
    assert status == 200 and answer["response"]["allowed"] is True
    assert answer == _expected(review)

    status, error = chart_pod.request("POST", "/validate", {"kind": "nonsense"})
    assert status == 400 and isinstance(error, dict), error

    # Every process of the container: uid/gid 10001, no capabilities, no new privileges,
    # and a root the kernel mounted read-only.
    container = chart_pod.container
    processes = container.processes()
    assert len(processes) >= 2  # gunicorn's master and its workers
    for pid in processes:
        status_lines = _process_status(pid)
        assert status_lines["Uid"].split() == ["10001"] * 4, status_lines["Uid"]
        assert status_lines["Gid"].split() == ["10001"] * 4, status_lines["Gid"]
        assert int(status_lines["CapEff"], 16) == 0
        assert status_lines["NoNewPrivs"] == "1"
        assert "ro" in _root_mount_options(pid)
    # The metrics files are on the /dev/shm emptyDir (the only writable places are those).
    pid1_root = Path(f"/proc/{container.pid}/root")
    assert list((pid1_root / "dev/shm/plugin-guard-metrics").glob("*.db"))

    assert container.stop() == 0, container.output()
    # Nothing was written into the root: the overlay's upper layer holds only the mount
    # points the runtime made for the pod's volumes.
    upper = container.scratch / "upper"
    written = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
    mount_points = {m.target.strip("/") for m in chart_pod.spec.mounts}
    assert set(written) <= mount_points, written
    output = container.output()
    assert "Traceback" not in output and "Read-only file system" not in output, output


def test_image_default_command_serves_with_its_own_certificate(
    built: Any, config: Any, tmp_path: Path
) -> None:
    """`docker run --read-only --tmpfs /tmp --tmpfs /dev/shm IMAGE`: the image's CMD
    creates a local CA in /tmp (XDG_STATE_HOME) and serves with it."""
    spec = rootfs.image_run_spec(config)
    assert spec.argv[:2] == ["plugin-guard", "serve"]
    with rootfs.start(built.rootfs, spec, tmp_path / "container") as container:
        ca_in_container = Path(f"/proc/{container.pid}/root/tmp/argo-plugin-guard/ca.crt")
        deadline = time.monotonic() + 60
        while not ca_in_container.exists():
            assert container.proc.poll() is None, container.output()
            assert time.monotonic() < deadline, container.output()
            time.sleep(0.2)
        ca = tmp_path / "ca.crt"
        ca.write_bytes(ca_in_container.read_bytes())
        connect = {"port": int(spec.argv[spec.argv.index("--port") + 1]), "ca": ca}
        _wait_healthy(container, server_name="localhost", **connect)
        risky = json.loads(RISKY_REVIEW.read_text())
        status, answer = container.request(
            "POST", "/validate", risky, server_name="localhost", **connect
        )
        assert status == 200 and answer == _expected(risky)
        assert container.stop() == 0, container.output()
