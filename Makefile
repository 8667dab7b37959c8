# feedletter: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench eval clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python demo/run.py

# Two test processes (pytest-xdist): the suite took 605 s in one and 363 s in two on a 2-core machine.
# TEST_WORKERS=0 runs it in this process alone (for pdb), more on a bigger machine.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict feedletter

bench: $(STAMP)
	$(BIN)/python bench/run.py

eval: $(STAMP)
	$(BIN)/python bench/eval_stories.py
	$(BIN)/python bench/eval_grouping.py
	$(BIN)/python bench/eval_summaries.py
	$(BIN)/python bench/eval_extract.py
	$(BIN)/python bench/eval_feeds.py
	$(BIN)/python bench/eval_real_feeds.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
