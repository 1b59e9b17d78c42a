# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
# The CPU build of PyTorch that this project is tested with; override for a GPU build,
# e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

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

# The whole suite runs on the default backend (PyTorch) in the foreground; the tests of code
# that differs per backend (marked `backend`) run on the other backends meanwhile, one after
# the other with one thread, their logs printed at the end. pytest's exit code 5 (no test
# collected) fails the run.
DEFAULT_BACKEND ?= torch
OTHER_BACKENDS ?= jax tensorflow
TEST_LOGS ?= .test-logs
test: install-test
	@mkdir -p $(TEST_LOGS); rm -f $(TEST_LOGS)/*.status; \
	(for backend in $(OTHER_BACKENDS); do \
		OMP_NUM_THREADS=1 KERAS_BACKEND=$$backend $(PYTHON) -m pytest -m backend $(PYTEST_ARGS) \
		 > $(TEST_LOGS)/$$backend.log 2>&1; \
		echo $$? > $(TEST_LOGS)/$$backend.status; \
	done) & \
	echo "== faconvlstm tests on the $(DEFAULT_BACKEND) backend (all) =="; \
	KERAS_BACKEND=$(DEFAULT_BACKEND) $(PYTHON) -m pytest $(PYTEST_ARGS); \
	echo $$? > $(TEST_LOGS)/$(DEFAULT_BACKEND).status; \
	wait; failed=0; \
	for backend in $(DEFAULT_BACKEND) $(OTHER_BACKENDS); do \
		if [ $$backend != $(DEFAULT_BACKEND) ]; then \
			echo "== faconvlstm tests on the $$backend backend (marked backend) =="; \
			cat $(TEST_LOGS)/$$backend.log; fi; \
		status=$$(cat $(TEST_LOGS)/$$backend.status 2>/dev/null || echo missing); \
		if [ $$status = missing ]; then echo "the $$backend suite ended without an exit status"; failed=1; \
		elif [ $$status -eq 5 ]; then echo "no tests were collected on $$backend"; failed=1; \
		elif [ $$status -ne 0 ]; then echo "tests failed on $$backend (exit $$status)"; failed=1; fi; \
	done; exit $$failed

benchmark: install
	$(PYTHON) benchmarks/layer_speed.py
