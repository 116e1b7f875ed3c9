VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install test lint schema bench chaos eval clean

install:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[dev,local]'

test:
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check agentflow_jobs agentflow tests bench
	$(BIN)/mypy --strict agentflow_jobs agentflow

schema:
	$(BIN)/agentflow-jobs schema --output schemas/job-spec.schema.json

bench:
	$(PY) -m bench

chaos:
	$(PY) -m bench.chaos

eval:
	$(PY) -m bench.eval

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
