# The two set-up commands (see README):
#   make demo   -- the main job on embedded defaults
#   make test   -- the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install bench clean

$(BIN)/dvc-monitor: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/dvc-monitor

demo: install
	$(BIN)/dvc-monitor demo

test: install
	$(BIN)/pytest -n auto -q

bench: install
	$(BIN)/python bench/bench_registry.py
	$(BIN)/python bench/bench_rollback.py
	$(BIN)/python bench/bench_cache_growth.py
	$(BIN)/python bench/bench_watch.py
	$(BIN)/python bench/bench_serve.py
	$(BIN)/python bench/bench_score.py
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_loop.py

clean:
	rm -rf $(VENV) .pytest_cache
