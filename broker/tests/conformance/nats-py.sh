#!/usr/bin/env bash
# nats.py's own test suite, from its published source, run once with
# nats-server and once with tribune-broker as the server
# (make conformance-py).
#
#   broker/tests/conformance/nats-py.sh [pytest args...]
#
# nats.py publishes no tests in its PyPI package, so the suite comes from
# its GitHub repository: NATS_PY_SRC names a checkout (its `nats/` client
# package holds `src/` and `tests/`); without it the repository is cloned
# at NATS_PY_REF (default main) into target/conformance/nats.py. The tests
# import that checkout's client, not the venv's.
#
# nats.py's harness starts `nats-server` from the directory pytest runs in
# (then from PATH) on fixed ports, so the suite runs one test at a time,
# from a directory whose `nats-server` is the server under test. Reports:
# target/conformance/nats-py/<server>.xml (JUnit), <server>.log, and
# summary.txt with the counts and every test that passes on nats-server and
# not on tribune-broker.
#
# Environment: NATS_SERVER (default .venv/bin/nats-server), TRIBUNE_BROKER
# (default target/release/tribune-broker), CONFORMANCE_SERVERS (default
# "nats-server tribune"), PYTHON (default .venv/bin/python).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
here="$repo/broker/tests/conformance"
out="$repo/target/conformance/nats-py"
mkdir -p "$out"

nats_server=$(realpath -m "${NATS_SERVER:-$repo/.venv/bin/nats-server}")
tribune=$(realpath -m "${TRIBUNE_BROKER:-$repo/target/release/tribune-broker}")
servers=${CONFORMANCE_SERVERS:-nats-server tribune}
python=${PYTHON:-$repo/.venv/bin/python}

src=${NATS_PY_SRC:-}
if [[ -z $src ]]; then
    src="$repo/target/conformance/nats.py"
    if [[ ! -d $src/.git ]]; then
        rm -rf "$src"
        git clone --depth 1 --branch "${NATS_PY_REF:-main}" \
            https://github.com/nats-io/nats.py "$src"
    fi
fi
client="$src/nats"
[[ -d $client/tests && -d $client/src/nats ]] || {
    echo "error: $src is not a nats.py checkout (no nats/tests, nats/src/nats)" >&2
    exit 1
}
"$python" -c 'import pytest, nkeys' 2>/dev/null || {
    echo "error: $python lacks pytest or nkeys (make venv installs them)" >&2
    exit 1
}

for server in $servers; do
    case $server in
        nats-server) bin=$nats_server ;;
        tribune) bin=$tribune ;;
        *) echo "unknown server $server" >&2; exit 2 ;;
    esac
    [[ -x $bin ]] || { echo "error: $bin is not built" >&2; exit 1; }
    # The harness's first choice: ./nats-server in the working directory.
    run="$out/run-$server"
    rm -rf "$run"
    mkdir -p "$run"
    ln -s "$bin" "$run/nats-server"
    echo "== nats.py tests against $server ($bin)"
    (cd "$client" && PYTHONPATH="$client/src:$client" PATH="$run:$PATH" \
        "$python" -m pytest "$client/tests" -p no:cacheprovider -q \
        --timeout=120 --junitxml="$out/$server.xml" "$@" >"$out/$server.log" 2>&1) || true
    tail -1 "$out/$server.log"
done

python3 "$here/summary.py" "$out" nats-server tribune >"$out/summary.txt" || true
cat "$out/summary.txt"
