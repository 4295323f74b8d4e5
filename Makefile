# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install the package with its train extra (torch, for the fine-tuning scripts)
# into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(BIN)/.medsets-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,train]"
	touch $@

demo: $(BIN)/.medsets-installed
	$(BIN)/medsets demo

test: $(BIN)/.medsets-installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
