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
# python3-boto3: the boot-time scripts call EC2 and Secrets Manager with it.
# openssl: verify.sh makes throw-away certificates to check the template.
# e2fsprogs, util-linux: mkfs.ext4/resize2fs and blkid/mount for the data volume.
apt-get install -y --no-install-recommends python3 python3-boto3 ca-certificates openssl \
    e2fsprogs util-linux

# A system user with no shell and no home to log in to.
if ! getent group tribune >/dev/null; then groupadd --system tribune; fi
if ! getent passwd tribune >/dev/null; then
    useradd --system --gid tribune --home-dir /var/lib/tribune --no-create-home \
        --shell /usr/sbin/nologin tribune
fi

for bin in tribune-broker tribune-auth tribune-bridge; do
    install -o root -g root -m 0755 "$src/bin/$bin" "/usr/local/bin/$bin"
done

install -d -o root -g tribune -m 0750 /etc/tribune /etc/tribune/tls /etc/tribune/keys
install -d -o root -g root -m 0755 /etc/tribune/templates /usr/local/libexec/tribune
for tmpl in broker.conf auth.toml bridge.conf; do
    install -o root -g root -m 0644 "$src/files/templates/$tmpl.tmpl" "/etc/tribune/templates/$tmpl.tmpl"
done
install -o root -g root -m 0755 "$src/files/render-config" /usr/local/libexec/tribune/render-config
install -o root -g root -m 0755 "$src/files/attach-data-volume" /usr/local/libexec/tribune/attach-data-volume
install -o root -g root -m 0644 "$src/files/tribune_boot.py" /usr/local/libexec/tribune/tribune_boot.py
# The web applications' rules (render-config imports it; `make web-app` too).
install -o root -g root -m 0644 "$src/files/tribune_webapps.py" /usr/local/libexec/tribune/tribune_webapps.py
# What the CloudWatch alarms watch, published every minute.
install -o root -g root -m 0755 "$src/files/tribune-cloudwatch-metrics" \
    /usr/local/libexec/tribune/tribune-cloudwatch-metrics

for unit in tribune-data-volume tribune-render-config tribune-broker tribune-auth tribune-bridge \
    tribune-cloudwatch-metrics; do
    install -o root -g root -m 0644 "$src/files/systemd/$unit.service" "/etc/systemd/system/$unit.service"
done
# The broker never starts without its data volume mounted (AMI only).
install -d -o root -g root -m 0755 /etc/systemd/system/tribune-broker.service.d
install -o root -g root -m 0644 "$src/files/systemd/tribune-broker.service.d/data-volume.conf" \
    /etc/systemd/system/tribune-broker.service.d/data-volume.conf
# The mount point; the data volume is mounted over it at boot.
install -d -o tribune -g tribune -m 0750 /var/lib/tribune

# Kernel settings for many connections.
cat >/etc/sysctl.d/60-tribune.conf <<'SYSCTL'
# Accept bursts of reconnecting clients (e.g. after a node's lame duck).
net.core.somaxconn = 4096
net.ipv4.tcp_max_syn_backlog = 8192
fs.file-max = 2097152
SYSCTL

systemctl daemon-reload
# All five start at boot. tribune-auth and tribune-bridge run only where
# render-config wrote their configs (ConditionPathExists), i.e. once the
# web-idp and provider secrets are filled in.
systemctl enable tribune-data-volume.service tribune-render-config.service tribune-broker.service \
    tribune-auth.service tribune-bridge.service tribune-cloudwatch-metrics.service
