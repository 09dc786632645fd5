#!/usr/bin/env bash
# `make run`: the whole Tribune system on one machine, no cloud.
#
#   3 broker nodes (cluster + JetStream, R3 streams, WebSocket listeners),
#   tribune-auth (auth callout for web users), the feed simulator with an
#   embedded MQTT broker, three tribune-bridges (one per node, one active at a
#   time: ha.mode single_active), the live-scores page and, with prometheus
#   installed, the dashboard and alerts of terraform/monitoring; prints the
#   URLs (the page's with a development token) and tails sports.football.* live.
#   Ctrl-C stops everything.
#
# Environment:
#   RUN_SERVER=tribune|nats   broker binary (default tribune; nats = reference nats-server)
#   TRIBUNE_BROKER_BIN / NATS_SERVER_BIN   binary paths (the Makefile exports them)
#   RUN_PORT_OFFSET=N         add N to every port (default 0: 4222-4224, 6222-6224,
#                             8222-8224, WebSocket 8081-8083, page 8080, MQTT 1883,
#                             bridges 9465/9468/9469, auth 9464/9466/9467,
#                             Prometheus 9090, dashboard 3000)
#   PROMETHEUS_BIN=PATH       prometheus for the live dashboard and alerts (default: on PATH;
#                             without one there is no dashboard)
#   RUN_STATE_DIR=DIR         keys, configs, logs, JetStream data (default target/run-local)
#   RUN_TAIL_AS=internal|web  foreground tail as an NKEY user or a web user (default internal)
#   RUN_TAIL_COUNT=N          exit after N updates (non-interactive check; default: until Ctrl-C)
#   RUN_RATE=R                simulator MQTT messages per second (default 5)
#   RUN_FOREGROUND=tail|wait|configure
#                             tail updates (default), or only wait for a signal
#                             (the page test runs it so; it reads $RUN_STATE_DIR/page.url
#                             and the services' pids from $RUN_STATE_DIR/pids), or
#                             only write keys, configs, keys/web.token and
#                             $RUN_STATE_DIR/services (one line per service: its name,
#                             then its command, shell-quoted) and exit without starting
#                             anything: bridge/run/chaos starts and breaks the services itself
#   RUN_LOOPBACK_PER_NODE=1   node N listens on 127.0.0.N instead of 127.0.0.1 (client,
#                             route, monitoring and WebSocket ports), so iptables can
#                             cut one node off (Linux routes all of 127/8 to lo)
#   RUN_NODE_EXTRA_CONF=TEXT  appended to every node's config (e.g. short pings)
#
# Every run writes $RUN_STATE_DIR/layout.json: each node's address and ports,
# the other services' ports, the account and key files (for tools and tests).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
BRIDGE="$TARGET/debug/tribune-bridge"
AUTH="$TARGET/debug/tribune-auth"
RUN_SERVER=${RUN_SERVER:-tribune}
MODE=${RUN_FOREGROUND:-tail}
case "$MODE" in tail|wait|configure) ;; *) echo "run-local: RUN_FOREGROUND must be tail, wait or configure" >&2; exit 2 ;; esac
case "$RUN_SERVER" in
    tribune) SERVER_BIN=${TRIBUNE_BROKER_BIN:-$TARGET/debug/tribune-broker} ;;
    nats)    SERVER_BIN=${NATS_SERVER_BIN:-$ROOT/.venv/bin/nats-server} ;;
    *) echo "run-local: RUN_SERVER must be tribune or nats" >&2; exit 2 ;;
esac
for bin in "$BRIDGE" "$AUTH" "$SERVER_BIN"; do
    [ -x "$bin" ] || { echo "run-local: $bin not found; run 'make build' (and 'make venv' for nats-server)" >&2; exit 2; }
done
WEB_SRC="$ROOT/bridge/web"
if [ "$MODE" != configure ] && [ ! -f "$WEB_SRC/vendor/nats-core.js" ]; then
    echo "run-local: $WEB_SRC/vendor/nats-core.js not found; run 'make web'" >&2; exit 2
fi
PYTHON=${PYTHON:-python3}

OFF=${RUN_PORT_OFFSET:-0}
HOST=(); CLIENT=(); ROUTE=(); MON=(); WS=()
for i in 0 1 2; do
    if [ "${RUN_LOOPBACK_PER_NODE:-0}" = 1 ]; then HOST[i]=127.0.0.$((i + 1)); else HOST[i]=127.0.0.1; fi
    CLIENT[i]=$((4222 + i + OFF)); ROUTE[i]=$((6222 + i + OFF)); MON[i]=$((8222 + i + OFF))
    WS[i]=$((8081 + i + OFF))
done
WEB_PORT=$((8080 + OFF))
MQTT_PORT=$((1883 + OFF)); BRIDGE_HTTP=($((9465 + OFF)) $((9468 + OFF)) $((9469 + OFF)))
# One tribune-auth per node (metrics 9464, 9466, 9467), as deployed: the
# callout has a responder while any node is up.
AUTH_HTTP=($((9464 + OFF)) $((9466 + OFF)) $((9467 + OFF)))

STATE=${RUN_STATE_DIR:-$ROOT/target/run-local}
rm -rf "$STATE"
mkdir -p "$STATE/keys" "$STATE/logs" "$STATE/conf"
# conf/ holds the route password (in the route URLs), keys/ the seeds.
chmod 700 "$STATE/keys" "$STATE/conf"
LOGS="$STATE/logs"

PIDS=()
NAMES=()
cleanup() {
    local status=$?
    trap - INT TERM EXIT
    echo
    echo "run-local: stopping"
    # Reverse start order, one at a time: the bridge and tribune-auth finish
    # (and drain to NATS) while the brokers are still up; brokers go last.
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "${PIDS[i]}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${PIDS[i]}" 2>/dev/null; then
            echo "run-local: ${NAMES[i]} did not stop in 10s; killing" >&2
            kill -KILL "${PIDS[i]}" 2>/dev/null || true
        fi
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    echo "run-local: stopped (logs in $LOGS)"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each service runs in its own session, so Ctrl-C at the terminal reaches only
# this script (and the foreground tail); cleanup then sends each one SIGTERM
# exactly once (a second signal means "force" to tribune-bridge). In
# configure mode the command is only written down.
start() { # name, command...
    local name=$1; shift
    if [ "$MODE" = configure ]; then
        { printf '%s' "$name"; printf ' %q' "$@"; printf '\n'; } >> "$STATE/services"
        return
    fi
    setsid "$@" >"$LOGS/$name.log" 2>&1 &
    PIDS+=($!); NAMES+=("$name")
    echo "$name $!" >> "$STATE/pids"
}

wait_port() { # port, name[, host]
    [ "$MODE" = configure ] && return 0
    for _ in $(seq 1 300); do
        if ( exec 3<>"/dev/tcp/${3:-127.0.0.1}/$1" ) 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "run-local: $2 did not listen on $1; see $LOGS/$2.log" >&2
    tail -20 "$LOGS/$2.log" >&2 || true
    exit 1
}

http_status_ok() { # port, path
    ( exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n' "$2" >&3 && head -1 <&3 ) 2>/dev/null | grep -q ' 200'
}

wait_http_ok() { # port, path, name
    [ "$MODE" = configure ] && return 0
    for _ in $(seq 1 600); do
        http_status_ok "$1" "$2" && return 0
        sleep 0.1
    done
    echo "run-local: $3 not healthy on :$1$2; see $LOGS/$3.log" >&2
    tail -20 "$LOGS/$3.log" >&2 || true
    exit 1
}

echo "== keys (NKEYs for internal users, callout issuer and xkey) -> $STATE/keys"
K="$STATE/keys"
BRIDGE_PUB=$("$BRIDGE" keygen user --seed-file "$K/bridge.nk")
TAIL_PUB=$("$BRIDGE" keygen user --seed-file "$K/tail.nk")
AUTHSVC_PUB=$("$BRIDGE" keygen user --seed-file "$K/auth-service.nk")
ISSUER_PUB=$("$BRIDGE" keygen account --seed-file "$K/callout-issuer.nk")
XKEY_PUB=$("$BRIDGE" keygen curve --seed-file "$K/callout-xkey.nk")
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$K/hs256.secret"
chmod 600 "$K/hs256.secret"

# Route authorization, new every run: a route is trusted with every
# account's messages, so even on loopback the route ports take only peers
# that know the password. The listening side holds its bcrypt hash, the
# route URLs the password, as nats-server users configure it.
ROUTE_USER=route
ROUTE_PASS=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
# bcrypt through the C library's crypt(3) (libxcrypt), reached from perl,
# with a random 22-character salt (the last character carries 2 bits, so it
# is one of the 4 canonical ones). Cost 10: the brokers here are debug
# builds, where one check takes ~0.3 s.
ROUTE_HASH=$(ROUTE_PASS=$ROUTE_PASS perl -e '
    open(my $r, "<", "/dev/urandom") or die; read($r, my $b, 22) == 22 or die;
    my @a = (".", "/", "A".."Z", "a".."z", "0".."9");
    my $salt = join("", map { $a[ord(substr($b, $_, 1)) % 64] } 0..20) . (".", "O", "e", "u")[ord(substr($b, 21, 1)) % 4];
    print crypt($ENV{ROUTE_PASS}, "\$2b\$10\$$salt");' 2>/dev/null || true)
if [[ ! $ROUTE_HASH =~ ^\$2b\$10\$.{53}$ ]]; then
    # No bcrypt in crypt(3) here (e.g. macOS): the plain password, which
    # the route URLs in the same file hold anyway.
    echo "run-local: crypt(3) has no bcrypt here; the route password is stored in plain text" >&2
    ROUTE_HASH=$ROUTE_PASS
fi
printf '%s\n' "$ROUTE_PASS" > "$K/route.password"
chmod 600 "$K/route.password"

echo "== $RUN_SERVER: 3 nodes, ports ${CLIENT[*]}, WebSocket ${WS[*]}, cluster ${ROUTE[*]} (route password in $K/route.password), monitoring ${MON[*]}"
R="nats-route://$ROUTE_USER:$ROUTE_PASS"
ROUTES="$R@${HOST[0]}:${ROUTE[0]}, $R@${HOST[1]}:${ROUTE[1]}, $R@${HOST[2]}:${ROUTE[2]}"
# JetStream on every node, the sports stream with three replicas: any one
# node can die and the bridge keeps publishing, nothing acknowledged is lost.
JS_NODES=(1 2 3); REPLICAS=3
for i in 0 1 2; do
    n=$((i + 1))
    JS_BLOCK=""
    if [[ " ${JS_NODES[*]} " == *" $n "* ]]; then
        JS_BLOCK="jetstream {
  store_dir: \"$STATE/data/node$n\"
  max_memory_store: 256MB
  max_file_store: 2GB
}"
    fi
    cat > "$STATE/conf/node$n.conf" <<CONF
# Generated by bridge/run/run-local.sh
server_name: tribune-$n
listen: ${HOST[i]}:${CLIENT[i]}
http: ${HOST[i]}:${MON[i]}
# Browsers. Plain ws:// on loopback only; a deployment listens with tls {}.
websocket {
  listen: ${HOST[i]}:${WS[i]}
  no_tls: true
  compression: true
  allowed_origins: [ "http://127.0.0.1:$WEB_PORT", "http://localhost:$WEB_PORT" ]
}
$JS_BLOCK
cluster {
  name: tribune-local
  listen: ${HOST[i]}:${ROUTE[i]}
  authorization {
    user: $ROUTE_USER
    password: "$ROUTE_HASH"
  }
  routes: [ $ROUTES ]
}
accounts {
  # Internal systems: the bridge publishes, services and tail read. JetStream here.
  SPORTS: {
    jetstream: enabled
    users: [
      { nkey: $BRIDGE_PUB, permissions: { publish: ["sports.>", "deadletter.>", "\$JS.API.>", "\$KV.tribune_bridge.>", "_INBOX.>"], subscribe: ["_INBOX.>"] } }
      { nkey: $TAIL_PUB }
    ]
    exports: [
      { stream: "sports.>" }
      # Read-only: the latest state of every match for web users (a batch
      # direct get answers with several messages, hence response_type).
      { service: "\$JS.API.DIRECT.GET.SPORTS", response_type: stream }
    ]
  }
  # tribune-auth's own connection.
  AUTH: { users: [ { nkey: $AUTHSVC_PUB } ] }
  # Web users land here (the callout decides), with the live updates imported.
  APP: {
    imports: [
      { stream: { account: SPORTS, subject: "sports.>" } }
      { service: { account: SPORTS, subject: "\$JS.API.DIRECT.GET.SPORTS" } }
    ]
  }
  SYS: {}
}
system_account: SYS
authorization {
  timeout: 2
  auth_callout {
    issuer: $ISSUER_PUB
    account: AUTH
    auth_users: [ $AUTHSVC_PUB, $BRIDGE_PUB, $TAIL_PUB ]
    xkey: $XKEY_PUB
  }
}
${RUN_NODE_EXTRA_CONF:-}
CONF
    start "node$n" "$SERVER_BIN" -c "$STATE/conf/node$n.conf"
done
for i in 0 1 2; do wait_port "${CLIENT[i]}" "node$((i + 1))" "${HOST[i]}"; done

echo "== tribune-auth x3 (auth callout for web users, one per node), metrics :${AUTH_HTTP[*]}"
# Each starts on its own node (the cluster's gossip gives it the others to
# fail over to); they share the callout subject in one queue group.
for i in 0 1 2; do
n=$((i + 1))
cat > "$STATE/conf/auth$n.toml" <<CONF
[nats]
servers = ["nats://${HOST[i]}:${CLIENT[i]}"]
nkey_seed = { file = "$K/auth-service.nk" }
[callout]
issuer_seed = { file = "$K/callout-issuer.nk" }
xkey_seed = { file = "$K/callout-xkey.nk" }
require_encryption = true
account = "APP"
[token]
issuers = ["tribune-local-dev"]
audiences = ["tribune-web"]
hs256_secret = { file = "$K/hs256.secret" }
[permissions]
static_subscribe = []
read_streams = ["SPORTS"]      # publish exactly \$JS.API.DIRECT.GET.SPORTS, nothing else
user_inboxes = true            # answers on _INBOX.<id>.>, a prefix of the user's own
[[permissions.claims]]
claim = "sports"
subject = "sports.{value}.>"
[metrics]
listen = "127.0.0.1:${AUTH_HTTP[i]}"
CONF
start "auth$n" "$AUTH" --config "$STATE/conf/auth$n.toml"
done

echo "== feed simulator with embedded MQTT broker on 127.0.0.1:$MQTT_PORT"
start simulator "$BRIDGE" simulate --embedded-broker "127.0.0.1:$MQTT_PORT" --rate "${RUN_RATE:-5}"

echo "== tribune-bridge x3 (one per node; one holds the lease and ingests), /healthz and /metrics on :${BRIDGE_HTTP[*]}"
for i in 0 1 2; do
n=$((i + 1))
# Each bridge prefers its own node; all share one provider session (same
# client_id), which passes to whichever bridge takes the lease next.
OWN_FIRST="\"nats://${HOST[i]}:${CLIENT[i]}\""
for j in 0 1 2; do [ "$j" = "$i" ] || OWN_FIRST="$OWN_FIRST, \"nats://${HOST[j]}:${CLIENT[j]}\""; done
cat > "$STATE/conf/bridge$n.toml" <<CONF
[mqtt]
url = "mqtt://127.0.0.1:$MQTT_PORT"
allow_plaintext = true        # loopback simulator; the provider is mqtts:// or wss://
client_id = "tribune-bridge-local"
[[mqtt.subscriptions]]
topic = "thesports/+/match/v1"
qos = 1
[nats]
servers = [$OWN_FIRST]
name = "tribune-bridge-$n"
nkey_seed = { file = "$K/bridge.nk" }
[jetstream]
replicas = $REPLICAS
[ha]
mode = "single_active"
instance = "bridge$n"
[http]
listen = "127.0.0.1:${BRIDGE_HTTP[i]}"
CONF
start "bridge$n" "$BRIDGE" run --config "$STATE/conf/bridge$n.toml"
done
for i in 0 1 2; do wait_http_ok "${BRIDGE_HTTP[i]}" /healthz "bridge$((i + 1))"; done
for i in 0 1 2; do wait_http_ok "${AUTH_HTTP[i]}" /healthz "auth$((i + 1))"; done

"$BRIDGE" dev-token --secret-file "$K/hs256.secret" --sports football,tennis > "$K/web.token"

# Where everything is, for tools (bridge/run/chaos reads it).
{
    printf '{\n  "server": "%s",\n  "state": "%s",\n  "nodes": [\n' "$RUN_SERVER" "$STATE"
    for i in 0 1 2; do
        printf '    {"name": "node%d", "server_name": "tribune-%d", "host": "%s", "client": %d, "route": %d, "monitor": %d, "websocket": %d, "auth_metrics": %d, "bridge_http": %d}%s\n' \
            $((i + 1)) $((i + 1)) "${HOST[i]}" "${CLIENT[i]}" "${ROUTE[i]}" "${MON[i]}" "${WS[i]}" "${AUTH_HTTP[i]}" "${BRIDGE_HTTP[i]}" "$([ $i -lt 2 ] && echo ,)"
    done
    printf '  ],\n  "mqtt": %d,\n  "cluster": "tribune-local",\n  "accounts": {"internal": "SPORTS", "web": "APP"},\n' "$MQTT_PORT"
    printf '  "keys": {"internal_user": "%s", "hs256_secret": "%s", "web_token": "%s"},\n' "$K/tail.nk" "$K/hs256.secret" "$K/web.token"
    printf '  "token": {"issuer": "tribune-local-dev", "audience": "tribune-web", "sports_claim": "sports"},\n'
    printf '  "stream": "SPORTS",\n  "page_origin": "http://127.0.0.1:%d"\n}\n' "$WEB_PORT"
} > "$STATE/layout.json"
if [ "$MODE" = configure ]; then
    trap - EXIT
    echo "run-local: configured (services in $STATE/services)"
    exit 0
fi

echo "== live-scores page on http://127.0.0.1:$WEB_PORT"
WEB="$STATE/web"
mkdir -p "$WEB/vendor"
cp "$WEB_SRC"/*.html "$WEB_SRC"/*.js "$WEB_SRC"/*.css "$WEB"/
cp "$WEB_SRC/vendor/nats-core.js" "$WEB/vendor/"
cat > "$WEB/config.json" <<CONF
{
  "servers": ["ws://${HOST[0]}:${WS[0]}", "ws://${HOST[1]}:${WS[1]}", "ws://${HOST[2]}:${WS[2]}"],
  "stream": "SPORTS",
  "subject_prefix": "sports",
  "sports_claim": "sports",
  "user_inboxes": true
}
CONF
start web "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WEB" "$WEB_PORT"
wait_port "$WEB_PORT" web
PAGE_URL="http://127.0.0.1:$WEB_PORT/#token=$(cat "$K/web.token")"
printf '%s\n' "$PAGE_URL" > "$STATE/page.url"

# The dashboard and alerts of terraform/monitoring, live: a Prometheus
# scraping every /metrics with the alerting rules loaded, and the Grafana
# dashboard drawn from it by terraform/monitoring/preview (no Grafana
# here). Only where a prometheus binary is installed (Debian: prometheus).
DASHBOARD_MSG="  dashboard:       install prometheus (apt-get install prometheus) for a live dashboard and alerts"
PROM_BIN=${PROMETHEUS_BIN:-$(command -v prometheus || true)}
if [ -n "$PROM_BIN" ]; then
    PROM_PORT=$((9090 + OFF)); DASH_PORT=$((3000 + OFF))
    MONITORING="$ROOT/terraform/monitoring"
    targets() { # host, port...
        local host=$1 out=() p; shift
        for p in "$@"; do out+=("\"$host:$p\""); done
        local IFS=,; echo "${out[*]}"
    }
    cat > "$STATE/conf/prometheus.yml" <<PROM
global: { scrape_interval: 5s, evaluation_interval: 5s }
rule_files: [ "$MONITORING/prometheus/tribune-alerts.yml" ]
scrape_configs:
  - job_name: tribune-broker
    static_configs: [ { targets: [ $(targets "${HOST[0]}" "${MON[0]}"),$(targets "${HOST[1]}" "${MON[1]}"),$(targets "${HOST[2]}" "${MON[2]}") ] } ]
  - job_name: tribune-auth
    static_configs: [ { targets: [ $(targets 127.0.0.1 "${AUTH_HTTP[@]}") ] } ]
  - job_name: tribune-bridge
    static_configs: [ { targets: [ $(targets 127.0.0.1 "${BRIDGE_HTTP[@]}") ] } ]
PROM
    echo "== prometheus on http://127.0.0.1:$PROM_PORT, dashboard on http://127.0.0.1:$DASH_PORT"
    # Its API answers cross-origin requests from the dashboard only (by
    # default any page the browser has open could read it).
    start prometheus "$PROM_BIN" --config.file="$STATE/conf/prometheus.yml" \
        --storage.tsdb.path="$STATE/prometheus" --web.listen-address="127.0.0.1:$PROM_PORT" \
        --web.cors.origin="http://(127\.0\.0\.1|localhost):$DASH_PORT"
    DASH="$STATE/dashboard"
    mkdir -p "$DASH"
    cp "$MONITORING/preview/index.html" "$MONITORING/preview/preview.js" "$MONITORING/grafana/tribune-cluster.json" "$DASH/"
    start dashboard "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$DASH" "$DASH_PORT"
    wait_port "$PROM_PORT" prometheus
    wait_port "$DASH_PORT" dashboard
    DASHBOARD_URL="http://127.0.0.1:$DASH_PORT/?prometheus=http://127.0.0.1:$PROM_PORT"
    printf '%s\n' "$DASHBOARD_URL" > "$STATE/dashboard.url"
    DASHBOARD_MSG="  dashboard:       $DASHBOARD_URL
  alerts:          http://127.0.0.1:$PROM_PORT/alerts"
fi
cat <<MSG

Tribune is running (logs: $LOGS).
Open the live-scores page (a development token for football and tennis, valid 1 hour):
  $PAGE_URL
Watch live updates in the terminal:
  internal system (NKEY user):
    $BRIDGE tail 'sports.football.*' --server nats://${HOST[1]}:${CLIENT[1]} --nkey-seed-file $K/tail.nk
  every football match's current state first, then live (batch direct get):
    $BRIDGE tail 'sports.football.*' --current --server nats://${HOST[1]}:${CLIENT[1]} --nkey-seed-file $K/tail.nk
  web user (token -> tribune-auth callout; reads football and tennis only):
    TRIBUNE_TOKEN=\$(cat $K/web.token) $BRIDGE tail 'sports.tennis.>' --server nats://${HOST[2]}:${CLIENT[2]} --token-env TRIBUNE_TOKEN
  bridge health:   curl -s 127.0.0.1:${BRIDGE_HTTP[0]}/healthz   (role: active or standby; also :${BRIDGE_HTTP[1]}, :${BRIDGE_HTTP[2]})
  cluster:         curl -s ${HOST[0]}:${MON[0]}/routez
$DASHBOARD_MSG
Ctrl-C stops everything.

MSG

if [ "$MODE" = wait ]; then
    echo "run-local: ready"
    # Until a signal (handled within a second); the trap cleans up.
    while :; do sleep 1; done
fi

TAIL_ARGS=(tail 'sports.football.*' --server "nats://${HOST[0]}:${CLIENT[0]}" --count "${RUN_TAIL_COUNT:-0}")
if [ "${RUN_TAIL_AS:-internal}" = web ]; then
    export TRIBUNE_TOKEN
    TRIBUNE_TOKEN=$(cat "$K/web.token")
    TAIL_ARGS+=(--token-env TRIBUNE_TOKEN)
else
    TAIL_ARGS+=(--nkey-seed-file "$K/tail.nk")
fi
"$BRIDGE" "${TAIL_ARGS[@]}"
