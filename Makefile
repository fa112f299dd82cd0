# Two set-up commands: `make demo` and `make test`. `make install` is the bootstrap both use.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
# The torch build is chosen here, not in the package metadata: on the development machines and CI
# torch==2.13.0 is a local CPU wheel; on a CUDA machine the same pin takes PyPI's CUDA build.
# Override with e.g. `make install TORCH=torch==2.14.1`, or install torch into the venv first.
TORCH  ?= torch==2.13.0
# onnxruntime-web for the in-browser tests, fetched as a user without Python's downloader would: `npm pack`
# (the version pinned in src/pix2pix/app/runtime.py, whose integrity hash the tests check the tarball against).
ORT_WEB := $(shell sed -n 's/^VERSION = "\(.*\)"/\1/p' src/pix2pix/app/runtime.py)
RUNTIME := .cache/onnxruntime-web-$(ORT_WEB).tgz

.PHONY: install demo test clean runtime

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/pix2pix demo

runtime: $(RUNTIME)

# Outside CI a machine without npm or the registry still runs the suite: the in-browser tests say they skipped.
$(RUNTIME):
	mkdir -p .cache
	cd .cache && npm pack --silent onnxruntime-web@$(ORT_WEB) >/dev/null || { test -z "$$CI" && \
	  echo "make: no onnxruntime-web tarball (npm pack failed); the in-browser tests will skip" >&2; }

test: install runtime
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .cache
