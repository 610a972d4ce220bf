PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test clean bench mutants

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements.lock -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'

# Synthesize the sample domains, generate their tasks, check them with the oracle, print the summary.
run: install
	$(BIN)/scaleenv synth --all
	$(BIN)/scaleenv tasks generate --all -n 100
	$(BIN)/scaleenv eval --all --agent oracle

test: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: install-test
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/mutation.py
	$(BIN)/python bench/runtime.py
	$(BIN)/python bench/soundness.py

# Mutation testing of the engine: scores per module (docs/benchmarks.md). Takes tens of minutes.
mutants: install-test
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,mutation]'
	$(BIN)/python bench/engine_mutants.py
	$(BIN)/python bench/engine_mutation.py

clean:
	rm -rf $(VENV) scaleenv-workspace mutants
