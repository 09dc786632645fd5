#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, nightly) and runs each for SECONDS.
#
#   broker/fuzz/run.sh SECONDS [TARGET...]     (default: every target)
#
# `make fuzz` and `make fuzz-smoke` call this. Each target starts from its
# committed seeds (corpus/TARGET) plus what earlier runs found
# (target/corpus/TARGET, where new inputs are written), so the committed
# seeds stay hand-made; a target with a dictionary (dict/TARGET.dict) gets
# it as -dict. A crash leaves its input in artifacts/TARGET/ and a
# line in the summary; every target runs even if an earlier one crashed,
# and the exit status is non-zero if any did.
#
# The binaries are run directly rather than through `cargo fuzz run`, which
# would call cargo again for each target. Environment:
#   FUZZ_TOOLCHAIN  rustup toolchain (default nightly)
#   FUZZ_JOBS       targets run in parallel (default 1)
#   FUZZ_ARGS       extra libFuzzer flags (e.g. -max_len=65536)
#   FUZZ_TMPDIR     where targets write files (default /dev/shm when writable)
#   FUZZ_CLEAN_BUILD=1  delete the sanitizer build (~1.5 GB) when done,
#                   keeping the corpus and logs (CI, where disk is short)
set -uo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: run.sh SECONDS [TARGET...]}
shift
toolchain=${FUZZ_TOOLCHAIN:-nightly}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "error: fuzzing needs the $toolchain Rust toolchain (rustup toolchain install $toolchain)" >&2
    exit 1
fi
if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "error: fuzzing needs cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    exit 1
fi

# Its own target directory, whatever CARGO_TARGET_DIR says: the sanitizer
# build shares nothing with the stable one.
target_dir=$PWD/target
host=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
bin=$target_dir/$host/release

start=$(date +%s)
if ! cargo "+$toolchain" fuzz build --target-dir "$target_dir"; then
    echo "error: building the fuzz targets failed" >&2
    exit 1
fi
echo "fuzz: build took $(($(date +%s) - start)) s"

run_one() {
    local t=$1
    mkdir -p "target/corpus/$t" "artifacts/$t" target/logs
    # A target's dictionary (dict/TARGET.dict: tokens libFuzzer splices
    # into inputs), when it has one. (The ${a[@]+...} form keeps bash 3's
    # `set -u` from calling an empty array unbound.)
    local dict=()
    if [ -f "dict/$t.dict" ]; then
        dict=("-dict=dict/$t.dict")
    fi
    # Targets that write files (filestore_recovery) do so under TMPDIR:
    # memory-backed /dev/shm, when there is one, spares the fsyncs (about 3x
    # the inputs per second). FUZZ_TMPDIR overrides.
    local tmp=${FUZZ_TMPDIR:-${TMPDIR:-/tmp}}
    if [ -z "${FUZZ_TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
        tmp=/dev/shm
    fi
    # -timeout: an input that takes this long is reported as a hang.
    # shellcheck disable=SC2086
    TMPDIR=$tmp ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} \
        "$bin/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" ${dict[@]+"${dict[@]}"} ${FUZZ_ARGS:-} \
        "target/corpus/$t" "corpus/$t" >"target/logs/$t.log" 2>&1
    local rc=$?
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "target/logs/$t.log")
    if [ $rc -eq 0 ]; then
        echo "fuzz $t: ok, ${runs:-?} inputs in ${seconds} s"
    else
        echo "fuzz $t: FAILED (exit $rc); input in broker/fuzz/artifacts/$t/, log broker/fuzz/target/logs/$t.log"
        grep -m1 -A3 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "target/logs/$t.log" | sed 's/^/    /'
    fi
    return $rc
}

jobs=${FUZZ_JOBS:-1}
status=0
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
running=0
for t in "${targets[@]}"; do
    if [ ! -x "$bin/$t" ]; then
        echo "fuzz $t: no such target" >>"$summary"
        status=1
        continue
    fi
    echo "fuzz: running $t for $seconds s"
    (run_one "$t" >>"$summary") &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
echo "== fuzz summary (${seconds} s per target)"
cat "$summary"
if [ "${FUZZ_CLEAN_BUILD:-0}" = 1 ]; then
    find "$target_dir" -mindepth 1 -maxdepth 1 ! -name corpus ! -name logs -exec rm -rf {} +
fi
exit $status
