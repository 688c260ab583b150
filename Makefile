# The README's two commands: `make demo` (set up, run the demo) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV ?= .venv
# torch is installed first with an exact pin so that pip never resolves a newer (CUDA, multi-GB) build;
# override on a GPU machine, e.g. `make demo TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# roadseg and what the demo uses: no test extras (OpenVINO, Selenium, ffmpeg, ...)
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.core
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.core
	$(BIN)/roadseg demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
