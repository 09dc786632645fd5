#!/usr/bin/env bash
# Runs on the Packer builder as root: installs the binaries, the units, the
# renderer and its template. Uploaded files are in /tmp/tribune.
set -euo pipefail
src=/tmp/tribune

export DEBIAN_FRONTEND=noninteractive
# Wait for cloud-init's first-boot apt work, or apt-get races it for the lock.
cloud-init status --wait >/dev/null 2>&1 || true
apt-get update
apt-get -y upgrade
# python3-boto3: the boot-time renderer reads Secrets Manager with it.
# openssl: verify.sh makes throw-away certificates to check the template.
apt-get install -y --no-install-recommends python3 python3-boto3 ca-certificates openssl

# A system user with no shell and no home to log in to.
if ! getent group tribune >/dev/null; then groupadd --system tribune; fi
if ! getent passwd tribune >/dev/null; then
    useradd --system --gid tribune --home-dir /var/lib/tribune --no-create-home \
        --shell /usr/sbin/nologin tribune
fi

for bin in tribune-broker tribune-auth tribune-bridge; do
    install -o root -g root -m 0755 "$src/bin/$bin" "/usr/local/bin/$bin"
done

install -d -o root -g tribune -m 0750 /etc/tribune /etc/tribune/tls
install -d -o root -g root -m 0755 /etc/tribune/templates /usr/local/libexec/tribune
install -o root -g root -m 0644 "$src/files/templates/broker.conf.tmpl" /etc/tribune/templates/broker.conf.tmpl
install -o root -g root -m 0755 "$src/files/render-config" /usr/local/libexec/tribune/render-config

for unit in tribune-render-config tribune-broker tribune-auth tribune-bridge; do
    install -o root -g root -m 0644 "$src/files/systemd/$unit.service" "/etc/systemd/system/$unit.service"
done

# Kernel settings for many connections.
cat >/etc/sysctl.d/60-tribune.conf <<'SYSCTL'
# Accept bursts of reconnecting clients (e.g. after a node's lame duck).
net.core.somaxconn = 4096
net.ipv4.tcp_max_syn_backlog = 8192
fs.file-max = 2097152
SYSCTL

systemctl daemon-reload
# The broker and its renderer start at boot; auth and bridge need their own
# configuration first (Ansible roles), so they stay disabled.
systemctl enable tribune-render-config.service tribune-broker.service
systemctl disable tribune-auth.service tribune-bridge.service
