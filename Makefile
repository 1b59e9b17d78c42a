# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
# The CPU build of PyTorch that this project is tested with; override for a GPU build,
# e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
BACKENDS ?= jax torch

.PHONY: install install-test demo test benchmark

install:
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e .

install-test:
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e ".[test]"

# The whole pipeline on the built-in synthetic dataset; DEMO_ARGS e.g. "--epochs 10 --out run".
DEMO_ARGS ?=
demo: install
	$(PYTHON) -m faconvlstm demo $(DEMO_ARGS)

# The suite runs once per backend; pytest's exit code 5 (no test collected) fails the run.
test: install-test
	@for backend in $(BACKENDS); do \
		echo "== faconvlstm tests on the $$backend backend =="; \
		KERAS_BACKEND=$$backend $(PYTHON) -m pytest $(PYTEST_ARGS); status=$$?; \
		if [ $$status -eq 5 ]; then echo "no tests were collected on $$backend"; exit 1; fi; \
		if [ $$status -ne 0 ]; then exit $$status; fi; \
	done

benchmark: install
	$(PYTHON) benchmarks/layer_speed.py
