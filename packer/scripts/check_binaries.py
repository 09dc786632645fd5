#!/usr/bin/env python3
"""Refuses release binaries that would not run on the AMI.

    check_binaries.py --arch x86_64|arm64 DIR NAME...

`make ami` runs this on the operator's machine, after the build and before
Packer starts a builder: each DIR/NAME must be a 64-bit little-endian Linux
ELF executable for the AMI's architecture, statically linked (no program
interpreter, no shared libraries), so the AMI's glibc does not matter.
Plain Python reading the ELF headers, so it works on macOS too (no readelf).
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

# e_machine values (ELF gABI).
MACHINES = {"x86_64": 62, "arm64": 183}
PT_INTERP = 3
ET_EXEC, ET_DYN = 2, 3


class BinaryError(Exception):
    """The file is not a binary the AMI can run; the message says why."""


def check(path: Path, arch: str) -> None:
    """Raises BinaryError unless `path` is a static Linux ELF for `arch`."""
    try:
        with path.open("rb") as f:
            header = f.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF":
                raise BinaryError("not an ELF file (built for another OS?)")
            if header[4] != 2 or header[5] != 1:
                raise BinaryError("not a 64-bit little-endian ELF")
            e_type, e_machine = struct.unpack_from("<HH", header, 16)
            (e_phoff,) = struct.unpack_from("<Q", header, 32)
            e_phentsize, e_phnum = struct.unpack_from("<HH", header, 54)
            if e_type not in (ET_EXEC, ET_DYN):
                raise BinaryError(f"not an executable (e_type {e_type})")
            want = MACHINES[arch]
            if e_machine != want:
                names = {v: k for k, v in MACHINES.items()}
                raise BinaryError(f"built for {names.get(e_machine, f'machine {e_machine}')}, the AMI is {arch}")
            f.seek(e_phoff)
            table = f.read(e_phentsize * e_phnum)
    except OSError as e:
        raise BinaryError(f"cannot read: {e.strerror}") from e
    if len(table) < e_phentsize * e_phnum or e_phentsize < 4:
        raise BinaryError("truncated program header table")
    kinds = {struct.unpack_from("<I", table, i * e_phentsize)[0] for i in range(e_phnum)}
    if PT_INTERP in kinds:
        raise BinaryError("dynamically linked (needs the build machine's libc); build the static musl target")
    # No PT_INTERP: the kernel runs it without ld.so, so no shared library is
    # ever loaded. (Rust's musl targets make static-pie executables: they do
    # have a PT_DYNAMIC, for their own relocations, and that is fine.)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, choices=sorted(MACHINES))
    parser.add_argument("dir", type=Path)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    failed = False
    for name in args.names:
        path = args.dir / name
        try:
            check(path, args.arch)
        except BinaryError as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            failed = True
        else:
            print(f"ok: {path}: static Linux {args.arch} executable")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
