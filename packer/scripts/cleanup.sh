#!/usr/bin/env bash
# Last build step: nothing of the builder's identity or caches in the AMI.
set -euo pipefail
rm -rf /tmp/tribune
apt-get -y autoremove --purge
apt-get clean
rm -rf /var/lib/apt/lists/*
# Let cloud-init run again on the instances (new host keys, new user data).
cloud-init clean --logs --seed
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
rm -f /home/admin/.ssh/authorized_keys /root/.ssh/authorized_keys
