# The README's two commands: `make demo` (set up, run the demo) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV ?= .venv
# torch is installed first with an exact pin so that pip never resolves a newer (CUDA, multi-GB) build;
# override on a GPU machine, e.g. `make demo TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

# The optional smp extra needs torchvision, which does not load beside the 2.13.0 CPU wheel: it gets its
# own venv with a torch + torchvision pair that do (on this machine: from local disk, a 5.5 GB venv).
SMP_VENV ?= .venv-smp
SMP_TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-smp venv clean

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

$(SMP_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SMP_VENV)
	$(SMP_VENV)/bin/pip install -q $(SMP_TORCH_SPEC)
	$(SMP_VENV)/bin/pip install -q -e '.[smp,onnx,openvino]' pytest
	touch $@

# the smp networks through the network contract and the CLI (PyTorch's convolutions: no C++ kernels built)
test-smp: $(SMP_VENV)/.installed
	ROADSEG_KERNELS=0 $(SMP_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/nets -k smp

clean:
	rm -rf $(VENV) $(SMP_VENV) runs
