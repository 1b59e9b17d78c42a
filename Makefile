# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
# The CPU build of PyTorch that this project is tested with; override for a GPU build,
# e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= --durations=15

.PHONY: install install-test install-tensorflow demo test benchmark

install:
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e .

install-test:
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e ".[test]"

# TensorFlow lives in an environment of its own that sees the main one's packages: installed
# beside PyTorch, Keras reaches it on every backend (seconds of import in each process) and it
# changes the process's allocator settings (glibc's trim threshold); see docs/layer.md.
# The main environment's site-packages are added by a .pth file, which works whether $(PYTHON)
# is a virtualenv's or the system's (a venv made with --system-site-packages from inside a venv
# sees the base interpreter's packages, not the venv's).
TF_ENV ?= .venv-tensorflow
SITE_DIRS = import sysconfig; print(*sorted({sysconfig.get_path(key) for key in ("purelib", "platlib")}))
install-tensorflow:
	$(PYTHON) -m venv $(TF_ENV)
	main=$$($(PYTHON) -c '$(SITE_DIRS)'); \
	 own=$$($(TF_ENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	 for dir in $$main; do echo "import site; site.addsitedir('$$dir')"; done > $$own/main-environment.pth
	$(TF_ENV)/bin/python -m pip install --quiet "tensorflow>=2.16"

# The whole pipeline on the built-in synthetic dataset; DEMO_ARGS e.g. "--epochs 10 --out run".
DEMO_ARGS ?=
demo: install
	$(PYTHON) -m faconvlstm demo $(DEMO_ARGS)

# The whole suite runs on the default backend (PyTorch): its tests marked `slow` in the
# background, the rest in the foreground. Meanwhile, after the slow ones, the tests of code
# that differs per backend (marked `backend`) run on the other backends, one after the other;
# TensorFlow's environment installs in the background from the start (mostly download time).
# Each of the two lanes has one thread (one core each). The background logs are printed at
# the end. pytest's exit code 5 (no test collected) fails the run.
DEFAULT_BACKEND ?= torch
OTHER_BACKENDS ?= jax tensorflow
TEST_LOGS ?= .test-logs
test: install-test
	@mkdir -p $(TEST_LOGS); rm -f $(TEST_LOGS)/*.status $(TEST_LOGS)/*.log; \
	($(if $(filter tensorflow,$(OTHER_BACKENDS)),\
	  $(MAKE) --no-print-directory install-tensorflow > $(TEST_LOGS)/tensorflow.log 2>&1 &,\
	  true &) tensorflow_install=$$!; \
	 OMP_NUM_THREADS=1 KERAS_BACKEND=$(DEFAULT_BACKEND) $(PYTHON) -m pytest -m slow $(PYTEST_ARGS) \
	  > $(TEST_LOGS)/$(DEFAULT_BACKEND)-slow.log 2>&1; \
	 echo $$? > $(TEST_LOGS)/$(DEFAULT_BACKEND)-slow.status; \
	 for backend in $(OTHER_BACKENDS); do \
		python=$(PYTHON); if [ $$backend = tensorflow ]; then python=$(TF_ENV)/bin/python; \
			if ! wait $$tensorflow_install; then echo 1 > $(TEST_LOGS)/$$backend.status; \
				continue; fi; fi; \
		OMP_NUM_THREADS=1 KERAS_BACKEND=$$backend $$python -m pytest -m backend $(PYTEST_ARGS) \
		 >> $(TEST_LOGS)/$$backend.log 2>&1; \
		echo $$? > $(TEST_LOGS)/$$backend.status; \
	done) & \
	echo "== faconvlstm tests on the $(DEFAULT_BACKEND) backend (all but those marked slow) =="; \
	OMP_NUM_THREADS=1 KERAS_BACKEND=$(DEFAULT_BACKEND) $(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS); \
	echo $$? > $(TEST_LOGS)/$(DEFAULT_BACKEND).status; \
	wait; failed=0; \
	for suite in $(DEFAULT_BACKEND) $(DEFAULT_BACKEND)-slow $(OTHER_BACKENDS); do \
		if [ $$suite != $(DEFAULT_BACKEND) ]; then \
			echo "== faconvlstm tests: $$suite =="; cat $(TEST_LOGS)/$$suite.log; fi; \
		status=$$(cat $(TEST_LOGS)/$$suite.status 2>/dev/null || echo missing); \
		if [ $$status = missing ]; then echo "the $$suite suite ended without an exit status"; failed=1; \
		elif [ $$status -eq 5 ]; then echo "no tests were collected in $$suite"; failed=1; \
		elif [ $$status -ne 0 ]; then echo "tests failed in $$suite (exit $$status)"; failed=1; fi; \
	done; exit $$failed

benchmark: install
	$(PYTHON) benchmarks/layer_speed.py
