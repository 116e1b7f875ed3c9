VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

# llama-cpp-python compiles llama.cpp at install. Its default, -march=native, takes every
# instruction the CPU lists, AMX included, and a VM that lists AMX without enabling it
# (Firecracker) crashes on the first token. A portable x86-64-v3 build runs on any
# machine from 2015 on; set LLAMA_CMAKE_ARGS= (empty) for a native one.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: install test lint schema bench chaos eval clean

install:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -e '.[dev,local]'
	# an editable install leaves our own modules uncompiled, and under
	# PYTHONDONTWRITEBYTECODE=1 every command would compile them again (~0.1 s a start)
	$(PY) -m compileall -q agentflow_jobs agentflow >/dev/null

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
