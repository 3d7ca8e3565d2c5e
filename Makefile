# `make demo`: install into .venv and train center_softmax on the built-in synthetic faces.
# `make test`: install into .venv (with test extras) and run the whole test suite in two processes (about 5 minutes
#   on 2 cores; an idle process takes over the end of the other's queue: `--dist worksteal`); prints the 25 slowest.
# `make test-fast`: the unit tests alone, without those marked `slow` (trainings, subprocesses), in about a minute:
#   the edit loop. How to keep tests fast: tests/conftest.py.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-fast

$(VENV)/installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes tensorflow-cpu  # an older install's: one TensorFlow distribution only
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/installed

demo: install
	$(PY) -m recipes run center_softmax --backbone=tiny --embedding_size=128 --batch_size=64 --epochs=30 \
		--lr_schedule=constant --lr=0.002

test: install
	$(PY) -m pytest -n 2 --dist worksteal --durations=25

test-fast: install
	$(PY) -m pytest -n 2 --dist worksteal -m "not slow"
