#!/usr/bin/env bash
# The first verify step, on the builder: every release binary installed in
# the image runs there. The binaries are built on the operator's machine
# (static musl executables for the AMI's architecture); this is the proof
# that they start on this image's kernel, libc and CPU before an AMI is
# registered. TRIBUNE_BIN_DIR overrides /usr/local/bin (for the tests).
set -euo pipefail
bin_dir=${TRIBUNE_BIN_DIR:-/usr/local/bin}
fail() { echo "verify-binaries: $*" >&2; exit 1; }

for bin in tribune-broker tribune-auth tribune-bridge; do
    path=$bin_dir/$bin
    [[ -x $path ]] || fail "$path missing or not executable"
    # --version exercises the loader, the allocator and clap's start-up;
    # a binary for the wrong architecture or libc fails right here.
    out=$("$path" --version 2>&1) || fail "$path --version failed (exit $?): $out"
    # "tribune-auth 0.1.0" (clap) or "tribune-broker: v0.1.0" (nats-server's style).
    [[ $out == "$bin "* || $out == "$bin: "* ]] || fail "$path --version printed '$out', not its name and version"
    echo "verify-binaries: $out"
done
echo "verify-binaries: ok"
