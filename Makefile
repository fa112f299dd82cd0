# Two set-up commands: `make demo` and `make test`. `make install` is the bootstrap both use.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
# The torch build is chosen here, not in the package metadata: on the development machines and CI
# torch==2.13.0 is a local CPU wheel; on a CUDA machine the same pin takes PyPI's CUDA build.
# Override with e.g. `make install TORCH=torch==2.14.1`, or install torch into the venv first.
TORCH  ?= torch==2.13.0

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/pix2pix demo

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
