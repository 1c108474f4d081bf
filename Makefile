# Two commands for a new machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch lies on this kind of machine's disk; elsewhere pip fetches it.
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: setup demo test lint format clean browser faults mutation

setup: $(VENV)/.installed

# voice2gender (--no-deps): its own code, only for tests/test_voice2gender.py to compare
# against; its xgboost>=3.4.1 pin needs Python 3.12, and it runs on the extra's xgboost-cpu.
# The `ina` extra without inaSpeechSegmenter's own requirements (TensorFlow among them):
# only its weight files are read, with h5py (src/sigwarehouse/models/ina.py).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev,vad,pretrained]'
	$(BIN)/python -m pip install -q --no-deps voice2gender==0.1.1
	$(BIN)/python -m pip install -q "h5py>=3"
	$(BIN)/python -m pip install -q --no-deps "inaSpeechSegmenter==0.6.8"
	touch $@

demo: setup
	$(BIN)/sigwh demo

# One worker per core (pytest-xdist), each with one torch thread: two workers of two
# threads each on two cores fight over them (the zoo tests took 70 s that way, 50 s so).
# loadgroup: the modules marked xdist_group (those whose fixtures run ingest jobs) run on
# one worker, so each fixture is built once; every other test goes where a worker is free.
test: setup browser faults
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n auto --dist loadgroup

# The report test renders the page in Debian's Chromium (Playwright drives it; nothing is
# downloaded). Installed here when we may (root with apt); otherwise that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium) >/dev/null \
	      || echo "note: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium is not installed; the browser test will be skipped"; fi; }

# The I/O-error test injects faults with Debian's libfiu (tests/test_faults.py), installed
# here when we may (root with apt); otherwise that test is skipped.
faults:
	@command -v fiu-run >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq --no-install-recommends fiu-utils libfiu0) \
	      >/dev/null || echo "note: could not install libfiu; the I/O-error test will be skipped"; \
	  else echo "note: libfiu is not installed; the I/O-error test will be skipped"; fi; }

# Mutation testing of the core (hours on 2 cores, resumable; not part of CI): mutmut for the
# Python code ([tool.mutmut] in pyproject.toml), then our own textual mutations of the SQL
# views. Each prints its score; tests/mutation/README.md explains the figures.
mutation: setup
	$(BIN)/python -m pip install -q "mutmut==3.8.1"
	$(BIN)/mutmut run --max-children 2 >/dev/null 2>&1 || true
	$(BIN)/python tests/mutation/python_score.py
	$(BIN)/python tests/mutation/sql_mutations.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) warehouse.duckdb warehouse.duckdb.wal report
