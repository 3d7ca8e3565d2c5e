# `make demo`: install into .venv and train center_softmax on the built-in synthetic faces.
# `make test`: install into .venv (with test extras) and run the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test

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
	$(PY) -m pytest -n 2  # two test processes: the suite's heavy tests are mostly subprocesses and waits
