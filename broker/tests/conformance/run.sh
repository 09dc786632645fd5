#!/usr/bin/env bash
# async-nats' own published test suite, run once with nats-server and once
# with tribune-broker as the server (make conformance).
#
#   broker/tests/conformance/run.sh [nextest filter args...]
#
# The suite is the async-nats crate from crates.io, at the version the
# workspace locks, with Tribune's stand-in for nats.rs' unpublished
# `nats-server` test helper (nats-server-harness/). Results go to
# target/conformance/: <server>.xml (JUnit), <server>.log, and summary.txt,
# which lists the counts and every test that passes on nats-server and fails
# on tribune-broker.
#
# Environment: NATS_SERVER (default .venv/bin/nats-server), TRIBUNE_BROKER
# (default target/release/tribune-broker), CONFORMANCE_SERVERS (default
# "nats-server tribune"), CONFORMANCE_JOBS (default: cores),
# CONFORMANCE_STRICT and CONFORMANCE_CLEAN_BUILD (below).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
here="$repo/broker/tests/conformance"
out="$repo/target/conformance"
mkdir -p "$out"

nats_server=$(realpath -m "${NATS_SERVER:-$repo/.venv/bin/nats-server}")
tribune=$(realpath -m "${TRIBUNE_BROKER:-$repo/target/release/tribune-broker}")
servers=${CONFORMANCE_SERVERS:-nats-server tribune}
jobs=${CONFORMANCE_JOBS:-$(nproc)}

cargo nextest --version >/dev/null 2>&1 || {
    echo "error: cargo-nextest is not installed; cargo install cargo-nextest --locked" >&2
    exit 1
}

# The async-nats source cargo already fetched for the workspace.
manifest=$(cd "$repo" && cargo metadata --format-version 1 --locked |
    python3 -c 'import json,sys
m=json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="async-nats"))')
src=$(dirname "$manifest")
version=$(basename "$src")
suite="$out/$version"
echo "== $version from $src"

# A copy of the published crate (made once per version; later runs reuse
# it and its build): its own workspace, the harness as the dev dependency
# the published manifest lacks, per-test time limits.
if [[ ! -f $suite/.tribune-copy ]]; then
    rm -rf "$suite"
    cp -r "$src" "$suite"
    chmod -R u+w "$suite"
    cat >> "$suite/Cargo.toml" <<TOML

[dev-dependencies.nats-server]
path = "$here/nats-server-harness"

[workspace]
TOML
    touch "$suite/.tribune-copy"
fi
mkdir -p "$suite/.config"
cat > "$suite/.config/nextest.toml" <<'TOML'
[profile.conformance]
slow-timeout = { period = "30s", terminate-after = 4 }
fail-fast = false
retries = 0
[profile.conformance.junit]
path = "junit.xml"
TOML

export CARGO_TARGET_DIR="$out/target"
(cd "$suite" && cargo nextest run --profile conformance --no-run)

for server in $servers; do
    case $server in
        nats-server) bin=$nats_server ;;
        tribune) bin=$tribune ;;
        *) echo "unknown server $server" >&2; exit 2 ;;
    esac
    [[ -x $bin ]] || { echo "error: $bin is not built" >&2; exit 1; }
    echo "== async-nats tests against $server ($bin)"
    # The tests run from the crate's directory (they name configs by
    # relative path); the harness starts $NATS_SERVER_BIN.
    (cd "$suite" && NATS_SERVER_BIN=$bin cargo nextest run --profile conformance \
        -j "$jobs" --no-fail-fast "$@" >"$out/$server.log" 2>&1) || true
    cp "$suite/target/nextest/conformance/junit.xml" "$out/$server.xml"
    tail -3 "$out/$server.log"
done

# The counts over every server that has a report (a run of one server
# compares with the other's last report). CONFORMANCE_STRICT=1 fails when
# tribune-broker fails a test nats-server passes (the smoke in make test).
strict=()
[[ ${CONFORMANCE_STRICT:-0} == 1 ]] && strict=(--strict)
status=0
python3 "$here/summary.py" "${strict[@]}" "$out" nats-server tribune >"$out/summary.txt" || status=$?
cat "$out/summary.txt"
# CI's disks are small: CONFORMANCE_CLEAN_BUILD=1 drops the suite's build
# (several GB) once it has run, keeping the reports.
if [[ ${CONFORMANCE_CLEAN_BUILD:-0} == 1 ]]; then
    rm -rf "$out/target" "$suite"
fi
exit $status
