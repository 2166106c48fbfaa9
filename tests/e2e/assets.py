"""Where the real-API-server tier finds its binaries (the setup-envtest layout).

`KUBEBUILDER_ASSETS` (a folder holding `etcd`, `kube-apiserver` and `kubectl`, as
`setup-envtest use 1.36 -p path` prints) wins; otherwise the project's cache folder,
`${XDG_CACHE_HOME:-~/.cache}/argo-plugin-guard/envtest`, which `make e2e-assets` fills.

Run as a script it prints one line saying whether the tier can run (used by the
Makefile and .ci/run): exit 0 when every binary is there, 1 when one is missing.
`--from-make-test` words that line for `make test`, which never runs the tier.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BINARIES = ("etcd", "kube-apiserver", "kubectl")
HOW_TO_GET = (
    "`make e2e-assets` puts etcd and kubectl there, "
    "`../shared/tools/build-kube-apiserver.sh MIRROR DIR` builds kube-apiserver "
    "(or `setup-envtest use 1.36 -p path` with internet, then KUBEBUILDER_ASSETS=that path); "
    "see docs/e2e.md"
)


def cache_folder(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "argo-plugin-guard" / "envtest"


def assets_folder(environ: Mapping[str, str] = os.environ) -> Path:
    configured = environ.get("KUBEBUILDER_ASSETS")
    return Path(configured) if configured else cache_folder(environ)


@dataclass(frozen=True)
class Assets:
    folder: Path

    @property
    def etcd(self) -> Path:
        return self.folder / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.folder / "kube-apiserver"

    @property
    def kubectl(self) -> Path:
        return self.folder / "kubectl"

    def missing(self) -> list[str]:
        return [
            name
            for name in BINARIES
            if not (self.folder / name).is_file() or not os.access(self.folder / name, os.X_OK)
        ]


def find_assets(environ: Mapping[str, str] = os.environ) -> Assets:
    return Assets(assets_folder(environ))


def missing_message(assets: Assets, outcome: str = "skipped") -> str:
    """One line: what is missing, where it was looked for, how to get it."""
    source = "KUBEBUILDER_ASSETS" if os.environ.get("KUBEBUILDER_ASSETS") else "the cache folder"
    return (
        f"real API server tier (tests/e2e) {outcome}: no {', '.join(assets.missing())} "
        f"in {assets.folder} ({source}); {HOW_TO_GET}"
    )


def main(argv: list[str]) -> int:
    from_make_test = "--from-make-test" in argv
    assets = find_assets()
    if assets.missing():
        print(missing_message(assets, "skipped" if from_make_test else "cannot run"))
        return 1
    if from_make_test:
        print(
            f"real API server tier (tests/e2e) not run by make test: `make e2e` runs it "
            f"(binaries in {assets.folder})"
        )
    else:
        print(f"real API server tier (tests/e2e): binaries in {assets.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
