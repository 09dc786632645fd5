#!/usr/bin/env bash
# Prints the template directory for the installed Packer and whether it
# needs `packer init` first, as "<absolute dir> init|none":
#
#   Packer >= 1.7   <repo>/packer init
#   Packer 1.6      <repo>/packer/packer-1.6 none
#
# Packer 1.7 moved amazon-ebs into a plugin that `packer init` installs from
# the `required_plugins` block in packer/versions.pkr.hcl. Packer 1.6 (what
# Debian ships) has amazon-ebs built in and rejects that block, and both load
# every *.pkr.hcl of the directory they are given, so no file name works for
# only one of them: 1.6 gets packer/packer-1.6/, which links the same template
# files but not versions.pkr.hcl. PACKER overrides the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
packer=${PACKER:-packer}

out=$("$packer" version 2>/dev/null) || { echo "layout.sh: '$packer version' failed" >&2; exit 1; }
version=$(printf '%s\n' "$out" | sed -n 's/^Packer v\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\)[.0-9]*.*/\1/p' | head -n 1)
[[ -n $version ]] || { echo "layout.sh: cannot read a version from: $out" >&2; exit 1; }
major=${version%%.*}
minor=${version#*.}
if (( major > 1 || (major == 1 && minor >= 7) )); then
    echo "$here init"
else
    echo "$here/packer-1.6 none"
fi
