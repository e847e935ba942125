# Quick start: `make demo` (set up, then the main job) and `make test` (set up, then the tests).
BIN := .venv/bin
STAMP := .venv/.setup-done

.PHONY: setup demo test test-slow test-fast bench results clean

setup: $(STAMP)
$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	bash scripts/demo.sh

# The default run, what CI runs; it ends with the 15 slowest tests.
test: setup
	$(BIN)/python -m pytest -q --durations=15

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# The default run without the integration tests (subprocess trainings, torchrun, wheel, compile).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not integration"

# The reference model's three runs, evaluation, table and figures (about 1.2 hours on 2 CPU cores).
results: setup
	bash scripts/results.sh runs

bench: setup
	$(BIN)/python benchmarks/step_time.py --resolution 28
	$(BIN)/python benchmarks/step_time.py --resolution 64 --steps 3 --warmup 1

clean:
	rm -rf .venv runs .pytest_cache
