# Set-up is hidden behind two targets: `make demo` (the main job) and `make test`.
# Both create .venv and install everything on first use; later runs reuse it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes from the machine's wheel store; pinning it here keeps pip from resolving
# (and downloading) another build.
TORCH := torch==2.14.1 torchvision==0.29.1
DEMO_ARGS ?=

.PHONY: setup demo-deps system-deps demo test lint clean

# The x86_64 torch wheel is a CUDA build: the venv takes about 6 GB. Say so up front rather
# than letting pip die half-way with "No space left on device".
NEED_MB ?= 6500

$(BIN)/convbench: pyproject.toml
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4/1024)}'); \
	if [ ! -x $(BIN)/python ] && [ "$$free" -lt $(NEED_MB) ]; then \
	  echo "convbench set-up needs about $(NEED_MB) MB free here for .venv (PyTorch); only $$free MB free in $$(pwd)." >&2; \
	  echo "Free some space (df -h .) or set NEED_MB=… to try anyway." >&2; exit 2; fi
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[serve]'
	touch $@

# convbench with the playground's server (`convbench serve`) is what `make demo` installs; the
# suite's extras (pytest, Playwright, psycopg, onnxruntime, …) only `make test` needs.
$(VENV)/.test-extras: $(BIN)/convbench pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/convbench

# Debian packages, installed only when missing. The demo needs only the Fashion-MNIST files;
# the suite also needs Chromium (browser tests) and PostgreSQL (store and worker tests).
# Needs root (CI and the dev machines run as root).
DEMO_DEBS := dataset-fashion-mnist
TEST_DEBS := $(DEMO_DEBS) chromium postgresql
define apt_install
	@missing=""; \
	for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
endef

demo-deps:
	$(call apt_install,$(DEMO_DEBS))

system-deps:
	$(call apt_install,$(TEST_DEBS))

# The three studies' networks (002, 003, 004), 2 epochs of one-cycle Adam each: every one
# ≥ 0.90 test accuracy, about 2 min of training on an AVX2-only CPU (README, "Quick start").
demo: setup demo-deps
	$(BIN)/convbench compare --dataset fashion-mnist --models simple-cnn,custom-cnn,B2FL16 \
	  --epochs 2 --schedule one-cycle --lr 0.006 --report out/fashion-mnist/report.html $(DEMO_ARGS)

# Two pytest workers (one per core on the 2-core machines): much of the suite waits on
# subprocesses, imports and the browser, so one worker leaves a core idle. A test file stays
# on one worker (--dist loadfile), so its module fixtures are built once.
PYTEST_WORKERS ?= 2
test: $(VENV)/.test-extras system-deps
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

lint: $(VENV)/.test-extras
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) convbench-runs out
