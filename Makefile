# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install the package with its dev and train extras (torch, for the fine-tuning
# scripts) into it on first use, and the oldest `datasets` release medsets supports into a folder of its
# own ($(OLDEST)), which tests/test_datasets_range.py puts first on the path to build and load with it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OLDEST := $(VENV)/datasets-oldest
OLDEST_DATASETS := $(shell sed -n 's/^OLDEST_TESTED = "\(.*\)"/\1/p' medsets/datasets_adapter.py)

.PHONY: demo test clean

$(BIN)/.medsets-installed: pyproject.toml medsets/datasets_adapter.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,train]"
	rm -rf $(OLDEST)
	$(BIN)/python -m pip install --quiet --no-deps --target $(OLDEST) "datasets==$(OLDEST_DATASETS)"
	touch $@

demo: $(BIN)/.medsets-installed
	$(BIN)/medsets demo

test: $(BIN)/.medsets-installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
