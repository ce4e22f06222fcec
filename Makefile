# One entry point for people and CI. Every target creates the virtual
# environment and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install dev test bench gen check-gen protodeps lint fmt clean

$(STAMP): pyproject.toml clients/python/pyproject.toml gateway/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./clients/python -e ./gateway -e '.[dev]'
	touch $@

install: $(STAMP)

## Run the whole service locally: embedded Postgres, server, worker, gateway.
dev: $(STAMP)
	$(BIN)/runsvc dev

## The whole test suite (Postgres: $RUNSVC_TEST_DATABASE_URL or embedded).
test: $(STAMP) check-gen lint
	$(BIN)/pytest

## Print latency, throughput and memory figures (Postgres as for `make test`).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_runs.py

## Regenerate the Python code of proto/ into clients/python (never edit it).
gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

## Fail when the generated code in the tree is not what `make gen` makes.
check-gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check

## Refresh the local copy of google/api/*.proto from the installed wheel.
protodeps: $(STAMP)
	$(BIN)/python scripts/copy_googleapis.py

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
