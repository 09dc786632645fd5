#!/usr/bin/env bash
# LocalStack on the host, without Docker, for broker/tests/discovery_localstack.rs.
#
#   broker/tests/support/localstack.sh install   # venv at <repo>/.localstack-venv (once, ~40 s)
#   broker/tests/support/localstack.sh start     # 127.0.0.1:4566, returns when healthy
#   broker/tests/support/localstack.sh stop
#   broker/tests/support/localstack.sh status
#
# Why this shape:
# - localstack-core 2026.3 needs Python >= 3.12, which the system python may not
#   be, so it gets its own venv and the pins that make that release install
#   (cbor2 / pyopenssl / cryptography; see /work/shared/ENVIRONMENT.md).
# - The hypercorn gateway is the one that honours the host in GATEWAY_LISTEN;
#   the default one binds 0.0.0.0, which we do not want on a shared CI host.
# - SERVICES: EC2 is what discovery calls; sts/iam keep Terraform and the
#   SDK's credential plumbing happy; secretsmanager, kms, logs and route53 are
#   what terraform/examples/localstack creates besides (TLS secret, flow-log
#   group and its key, the optional nats.<domain> records); cloudwatch holds
#   the cluster's alarms and what tribune-cloudwatch-metrics publishes.
# - Every start is idempotent: if something already answers the health
#   endpoint we leave it alone (and do not try to own it on `stop`).
#
# Environment overrides:
#   LOCALSTACK_VENV   venv dir            (default <repo>/.localstack-venv)
#   LOCALSTACK_STATE  pid/log/volume dir  (default <repo>/target/localstack)
#   LOCALSTACK_PYTHON python to build the venv with (default: pyenv 3.13.0, then any 3.12+)
#   LOCALSTACK_PORT   port                (default 4566)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/../../.." && pwd)
venv=${LOCALSTACK_VENV:-$repo/.localstack-venv}
state=${LOCALSTACK_STATE:-$repo/target/localstack}
port=${LOCALSTACK_PORT:-4566}
health="http://127.0.0.1:$port/_localstack/health"
pidfile=$state/localstack.pid
logfile=$state/localstack.log

# Pinned together: newer cbor2/pyopenssl/cryptography break this localstack release.
pins=('localstack-core[runtime]==2026.3.0' 'cbor2<6' 'pyopenssl>=25,<26' 'cryptography>=45.0.7,<47')

die() { echo "localstack.sh: $*" >&2; exit 1; }
log() { echo "localstack.sh: $*" >&2; }

# Prints the first python >= 3.12 we can find.
find_python() {
    local candidates=()
    [[ -n ${LOCALSTACK_PYTHON:-} ]] && candidates+=("$LOCALSTACK_PYTHON")
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root=$(pyenv root 2>/dev/null || true)
        [[ -n $root ]] && candidates+=("$root/versions/3.13.0/bin/python3")
        # Any other 3.12+/3.13 pyenv has, newest first.
        [[ -n $root && -d $root/versions ]] && while IFS= read -r v; do
            candidates+=("$root/versions/$v/bin/python3")
        done < <(ls -1 "$root/versions" | grep -E '^3\.1[2-9]' | sort -rV)
    fi
    candidates+=(python3.13 python3.12 python3)
    local p
    for p in "${candidates[@]}"; do
        command -v "$p" >/dev/null 2>&1 || [[ -x $p ]] || continue
        if "$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

healthy() {
    curl -fsS --max-time 2 "$health" >/dev/null 2>&1
}

cmd_install() {
    if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import localstack' 2>/dev/null; then
        log "LocalStack already installed in $venv"
        return 0
    fi
    local py
    py=$(find_python) || die "no Python 3.12+ found (tried LOCALSTACK_PYTHON, pyenv 3.13.0, python3.13, python3.12, python3); localstack-core 2026.3 needs 3.12 or newer. Install one or set LOCALSTACK_PYTHON=/path/to/python3.13"
    log "creating $venv with $py ($("$py" --version 2>&1))"
    "$py" -m venv "$venv"
    # Python 3.13 venvs ignore themselves in git; 3.12 ones do not.
    [[ -f $venv/.gitignore ]] || echo '*' >"$venv/.gitignore"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
    "$venv/bin/python" -c 'import localstack' || die "localstack did not install into $venv"
    log "installed LocalStack into $venv"
}

cmd_start() {
    if healthy; then
        log "LocalStack already running at http://127.0.0.1:$port"
        return 0
    fi
    [[ -x $venv/bin/python ]] || die "no venv at $venv; run '$0 install' first"
    mkdir -p "$state/volume"
    log "starting LocalStack on 127.0.0.1:$port (log: $logfile)"
    # setsid: its own process group, so `stop` can end it and its children only.
    GATEWAY_SERVER=hypercorn \
    GATEWAY_LISTEN=127.0.0.1:$port \
    SERVICES=ec2,sts,iam,secretsmanager,kms,logs,route53,cloudwatch \
    DISABLE_EVENTS=1 \
    DNS_ADDRESS=0 \
    SKIP_SSL_CERT_DOWNLOAD=1 \
    LOCALSTACK_VOLUME_DIR=$state/volume \
        setsid "$venv/bin/python" -m localstack.runtime.main >"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local i
    for i in $(seq 1 120); do
        if healthy; then
            log "LocalStack is ready at http://127.0.0.1:$port (pid $(cat "$pidfile"))"
            return 0
        fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            rm -f "$pidfile"
            die "LocalStack exited during startup; see $logfile"
        fi
        sleep 0.5
    done
    tail -n 30 "$logfile" >&2 || true
    die "LocalStack did not become healthy at $health within 60 s; see $logfile"
}

cmd_stop() {
    if [[ ! -f $pidfile ]]; then
        if healthy; then
            log "LocalStack at :$port was not started by this script; leaving it alone"
        else
            log "LocalStack is not running"
        fi
        return 0
    fi
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        # Negative pid: the process group setsid created, i.e. LocalStack and its workers.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "LocalStack (pid $pid) did not stop on TERM; killing"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped LocalStack (pid $pid)"
    else
        log "LocalStack (pid $pid) was not running"
    fi
    rm -f "$pidfile"
}

cmd_status() {
    if healthy; then
        echo "running at http://127.0.0.1:$port"
    else
        echo "not running"
        return 1
    fi
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    *) echo "usage: $0 {install|start|stop|restart|status}" >&2; exit 2 ;;
esac
