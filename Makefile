# Two entry points: `make demo` (the main job) and `make test`. Each refreshes .venv itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test,peers]'
	$(PY) -m pip install -q --no-deps -c constraints.txt hebo
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/latentnas demo

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
