#!/usr/bin/env bash
# The Packer verify step, on the builder as root: fails the build (and so no
# AMI is registered) unless everything installed works.
set -euo pipefail
fail() { echo "verify: $*" >&2; exit 1; }

for bin in tribune-broker tribune-auth tribune-bridge; do
    [[ -x /usr/local/bin/$bin ]] || fail "/usr/local/bin/$bin missing"
done
/usr/local/bin/tribune-broker --version
/usr/local/bin/tribune-auth --version
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
sed -e "s|@@TLS_DIR@@|$work/tls|g" -e 's|@@REGION@@|eu-west-1|g' -e 's|@@TAG_KEY@@|tribune:cluster|g' \
    -e 's|@@CLUSTER@@|verify|g' -e 's|@@SERVER_NAME@@|verify-a|g' -e 's|@@INSTANCE_ID@@|i-0|g' \
    -e 's|@@PRIVATE_IP@@|10.0.0.1|g' -e 's|@@VPC_ID@@|vpc-0|g' \
    -e 's|@@CLIENT_ADVERTISE@@|client_advertise: "192.0.2.1:4222"|g' \
    /etc/tribune/templates/broker.conf.tmpl >"$work/broker.conf"
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
systemctl is-enabled tribune-render-config.service tribune-broker.service >/dev/null || fail "units not enabled"
echo "verify: ok"
