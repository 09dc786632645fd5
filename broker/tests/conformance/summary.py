"""Counts and differences between conformance runs (broker/tests/conformance/run.sh).

Reads <out>/<server>.xml (nextest's JUnit report) for each server named and
prints pass/fail/skip counts, then every test that passes on the first
server (the reference) and does not pass on another. With --strict (the
smoke run in make test), any such test fails the run.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def outcomes(report: Path) -> dict[str, str]:
    """Test id -> "pass" | "fail" | "skip"."""
    result = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f'{case.get("classname")}::{case.get("name")}'
        if case.find("skipped") is not None:
            result[name] = "skip"
        elif case.find("failure") is not None or case.find("error") is not None:
            result[name] = "fail"
        else:
            result[name] = "pass"
    return result


def main() -> int:
    args = sys.argv[1:]
    strict = "--strict" in args
    args = [a for a in args if a != "--strict"]
    out = Path(args[0])
    servers = args[1:]
    runs = {s: outcomes(out / f"{s}.xml") for s in servers if (out / f"{s}.xml").exists()}
    for server, run in runs.items():
        counts = {k: sum(1 for v in run.values() if v == k) for k in ("pass", "fail", "skip")}
        print(f"{server}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    if len(runs) < 2:
        return 0
    reference, *others = runs
    ref = runs[reference]
    missing = 0
    for other in others:
        run = runs[other]
        passing = [t for t, v in ref.items() if v == "pass"]
        both = [t for t in passing if run.get(t) == "pass"]
        print(f"{other} passes {len(both)} of the {len(passing)} tests {reference} passes")
        for t in sorted(set(passing) - set(both)):
            print(f"  {run.get(t, 'missing')}: {t}")
            missing += 1
        better = sorted(t for t, v in run.items() if v == "pass" and ref.get(t) != "pass")
        for t in better:
            print(f"  passes only on {other}: {t}")
    return 1 if strict and missing else 0


if __name__ == "__main__":
    sys.exit(main())
