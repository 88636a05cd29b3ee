# Set-up is hidden behind two targets: `make demo` (the main job) and `make test`.
# Both create .venv and install everything on first use; later runs reuse it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes from the machine's wheel store; pinning it here keeps pip from resolving
# (and downloading) another build.
TORCH := torch==2.14.1 torchvision==0.29.1
DEMO_ARGS ?=

.PHONY: setup system-deps demo test lint clean

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
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/convbench

# Debian packages: Fashion-MNIST files, Chromium for the browser test, PostgreSQL for the
# store tests. Needs root (CI and the dev machines run as root).
system-deps:
	@missing=""; \
	for p in dataset-fashion-mnist chromium postgresql; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

demo: setup system-deps
	$(BIN)/convbench compare --dataset fashion-mnist --models B2FL16,custom-cnn,resnet20 \
	  --epochs 3 --batch-size 128 --report out/fashion-mnist/report.html $(DEMO_ARGS)

test: setup system-deps
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) convbench-runs out
