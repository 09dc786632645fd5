#!/usr/bin/env bash
# The Packer verify step, on the builder as root: fails the build (and so no
# AMI is registered) unless everything installed works.
set -euo pipefail
fail() { echo "verify: $*" >&2; exit 1; }

# verify-binaries.sh, run just before this, ran all three binaries.
python3 -c 'import boto3' || fail "python3-boto3 missing"
id tribune >/dev/null || fail "user tribune missing"

# Render the real template with stand-in values and throw-away certificates,
# and let the broker check the result (as it does in ExecStartPre).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=verify -keyout "$work/tls/server-key.pem" -out "$work/tls/server.pem" 2>/dev/null
cp "$work/tls/server.pem" "$work/tls/ca.pem"
# Stand-in keys of the right kinds from the installed tribune-bridge, so the
# broker checks real NKEYs in the accounts and the auth callout.
key() { /usr/local/bin/tribune-bridge keygen "$1" --seed-file "$work/$2.nk"; }
sed -e "s|@@TLS_DIR@@|$work/tls|g" -e 's|@@REGION@@|eu-west-1|g' -e 's|@@TAG_KEY@@|tribune:cluster|g' \
    -e 's|@@CLUSTER@@|verify|g' -e 's|@@SERVER_NAME@@|verify-a|g' -e 's|@@INSTANCE_ID@@|i-0|g' \
    -e 's|@@PRIVATE_IP@@|10.0.0.1|g' -e 's|@@VPC_ID@@|vpc-0|g' \
    -e 's|@@CLIENT_ADVERTISE@@|client_advertise: "192.0.2.1:4222"|g' -e 's|@@WS_ADVERTISE@@|advertise: "192.0.2.1:443"|g' \
    -e 's|@@WS_ALLOWED_ORIGINS@@|allowed_origins: ["https://verify.example"]|g' \
    -e 's|@@JS_MAX_FILE@@|1GB|g' -e 's|@@ROUTE_USER@@|route|g' \
    -e "s|@@ROUTE_PASSWORD@@|$(openssl rand -hex 24)|g" \
    -e "s|@@BRIDGE_PUB@@|$(key user bridge)|g" -e "s|@@SERVICES_PUB@@|$(key user services)|g" \
    -e "s|@@AUTH_SERVICE_PUB@@|$(key user auth)|g" -e "s|@@SYS_PUB@@|$(key user sys)|g" \
    -e "s|@@ISSUER_PUB@@|$(key account issuer)|g" -e "s|@@XKEY_PUB@@|$(key curve xkey)|g" \
    -e 's|@@WEB_APP_ACCOUNTS@@|VERIFY_APP: { imports: [ { stream: { account: SPORTS, subject: "sports.>" } }, { service: { account: SPORTS, subject: "$JS.API.DIRECT.GET.SPORTS" } } ] }|g' \
    /etc/tribune/templates/broker.conf.tmpl >"$work/broker.conf"
for tmpl in auth.toml bridge.conf; do
    [[ -f /etc/tribune/templates/$tmpl.tmpl ]] || fail "template $tmpl.tmpl missing"
done
if grep -q '@@' "$work/broker.conf"; then fail "template has placeholders verify.sh does not know"; fi
/usr/local/bin/tribune-broker -c "$work/broker.conf" -t || fail "rendered broker.conf rejected"

# Units: syntax, and the properties the deployment relies on.
systemd-analyze verify /etc/systemd/system/tribune-*.service
prop() { systemctl show -p "$2" --value "$1"; }
[[ $(prop tribune-broker KillSignal) == 12 ]] || fail "tribune-broker must stop with SIGUSR2 (lame duck)"
[[ $(prop tribune-broker LimitNOFILE) == 1048576 ]] || fail "tribune-broker LimitNOFILE"
[[ $(prop tribune-broker NoNewPrivileges) == yes ]] || fail "tribune-broker NoNewPrivileges"
[[ $(prop tribune-broker ProtectSystem) == strict ]] || fail "tribune-broker ProtectSystem"
[[ $(prop tribune-broker User) == tribune ]] || fail "tribune-broker must not run as root"
systemctl is-enabled tribune-data-volume.service tribune-render-config.service tribune-broker.service \
    tribune-auth.service tribune-bridge.service tribune-cloudwatch-metrics.service >/dev/null \
    || fail "units not enabled"
python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' \
    /usr/local/libexec/tribune/tribune-cloudwatch-metrics || fail "tribune-cloudwatch-metrics does not parse"
[[ $(prop tribune-broker Requires) == *tribune-data-volume.service* ]] \
    || fail "tribune-broker must require its data volume (tribune-broker.service.d/data-volume.conf)"
python3 -c 'import sys; sys.path.insert(0, "/usr/local/libexec/tribune"); import tribune_boot, tribune_webapps' \
    || fail "tribune_boot.py or tribune_webapps.py is not importable beside the boot scripts"
command -v mkfs.ext4 blkid resize2fs mount >/dev/null || fail "block tools for the data volume missing"
echo "verify: ok"
