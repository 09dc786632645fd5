"""The run's report: JSON (everything), Markdown (for people), and the
section of RELIABILITY.md that shows the last run of each server side by
side.

RELIABILITY.md keeps the figures of both servers in a hidden JSON comment
inside its section, so a run against one server rewrites its own column
and keeps the other's from the last run that had it.
"""

import json
import re
from pathlib import Path
from typing import Dict, List

BEGIN = "<!-- chaos-system:begin (written by bridge/run/chaos.py --write-reliability; do not edit by hand) -->"
END = "<!-- chaos-system:end -->"
DATA = re.compile(r"<!-- chaos-system-data: (.*?) -->", re.S)
SERVER_LABEL = {"tribune": "tribune-broker", "nats": "nats-server"}


def write(result: dict, state: Path) -> tuple:
    j = state / "report.json"
    m = state / "report.md"
    j.write_text(json.dumps(result, indent=2, default=str) + "\n")
    m.write_text(markdown(result))
    return j, m


def _check(result: dict, name: str) -> dict:
    for c in result.get("checks", []):
        if c["name"] == name:
            return c
    return {}


def _worst_recovery(f: dict) -> str:
    rec = f.get("recovery") or {}
    if not rec:
        return "-"
    never = [n for n, r in rec.items() if r["recovery_s"] is None]
    if never:
        return f"never: {', '.join(never[:3])}"
    name, r = max(rec.items(), key=lambda kv: kv[1]["recovery_s"])
    gap_name, g = max(rec.items(), key=lambda kv: kv[1]["longest_gap_s"])
    return f"{r['recovery_s']:.1f} s ({name}); longest gap {g['longest_gap_s']:.1f} s ({gap_name})"


def _fault_detail(f: dict) -> str:
    d = f.get("detail") or {}
    if f.get("skipped"):
        return f"skipped: {f['skipped']}"
    if f["kind"] == "slow_consumer":
        return (f"{d.get('published')} msgs flooded, fast got {d.get('fast_received')}, stalled one "
                + (f"closed by the server ({d.get('slow_closed_reason')})" if d.get("slow_closed_by_server")
                   else "still connected"))
    if f["kind"] == "bad_connects":
        return f"{d.get('attempts')} attempts: {d.get('refused')} refused, {d.get('accepted')} accepted"
    if f["kind"] == "rolling_restart":
        return "; ".join(f"{n['node']} lame duck {n['lame_duck_s']} s, back {n['rejoined_s']} s"
                         for n in d.get("nodes", []))
    return ", ".join(f"{k} {v}" for k, v in d.items() if k != "converged")


def markdown(r: dict) -> str:
    status = "PASS" if r["ok"] else "FAIL"
    out = [
        f"# System chaos run: {SERVER_LABEL.get(r['server'], r['server'])}, {status}",
        "",
        f"- seed **{r['seed']}**, fault phase {r['seconds']} s, whole run {r.get('duration_s')} s, started {r['started']}",
        f"- binary: `{r.get('binary')}` ({r.get('version')})",
        f"- replay: `{r['replay']}`",
        f"- state and logs: `{r['state_dir']}`",
        "",
        "## Invariants",
        "",
        "| invariant | result | summary |",
        "|---|---|---|",
    ]
    for c in r.get("checks", []):
        out.append(f"| {c['name']} | {'pass' if c['ok'] else '**FAIL**'} | {c['summary']} |")
    out += ["", "## Faults", "", "| t (s) | kind | target | what happened | slowest recovery after it |",
            "|---|---|---|---|---|"]
    for f in r.get("faults", []):
        out.append(f"| {f['start']:.1f}-{f['end']:.1f} | {f['kind']} | {f['target']} | {_fault_detail(f)} | "
                   f"{_worst_recovery(f)} |")
    failing = [c for c in r.get("checks", []) if not c["ok"]]
    if failing or r.get("violations"):
        out += ["", "## Violations", "", f"Replay with `{r['replay']}`.", ""]
        for c in failing:
            out.append(f"- **{c['name']}**: {c['summary']}")
            for d in c.get("details", [])[:20]:
                out.append(f"  - {d}")
        for v in r.get("violations", []):
            out.append(f"- t={v['t']} [{v['invariant']}] {v['detail']}")
    out += ["", "## Figures", "", "```json", json.dumps({c["name"]: c["figures"] for c in r.get("checks", [])},
                                                       indent=2, default=str), "```", ""]
    if r.get("load"):
        out += ["## Load (successes / failures per probe)", "", "| probe | ok | failed |", "|---|---|---|"]
        for name, v in r["load"].items():
            out.append(f"| {name} | {v['ok']} | {v['failed']} |")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# RELIABILITY.md


def figures_row(r: dict) -> Dict[str, str]:
    """The few figures RELIABILITY.md shows for one run."""
    acked = _check(r, "acked-exactly-once").get("figures", {})
    dur = _check(r, "durables-get-everything").get("figures", {})
    rec = _check(r, "flows-recover").get("figures", {})
    conv = _check(r, "cluster-converges").get("figures", {})
    rss = _check(r, "memory-bounded").get("figures", {})
    bad = _check(r, "bad-logins-refused").get("figures", {})
    slow = _check(r, "slow-consumer-isolated").get("figures", {})
    bridge = _check(r, "bridge-states-monotonic").get("figures", {})
    crash = _check(r, "no-crash")
    kinds: Dict[str, int] = {}
    for f in r.get("faults", []):
        if not f.get("skipped"):
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    worst = rec.get("worst_recovery_s_by_kind", {})
    missing = sum(v.get("missing", 0) for k, v in dur.items() if isinstance(v, dict))
    slow_runs = slow.get("runs") or []
    row = {
        "result": "PASS" if r["ok"] else "**FAIL**",
        "date, seed, fault phase": f"{r['started'][:16]}, {r['seed']}, {r['seconds']} s",
        "faults injected": ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none",
        "acked JetStream publishes": str(acked.get("acked", "-")),
        "in the stream / duplicates / gaps / out of order": (
            f"{acked.get('stream_msgs', '-')} / {acked.get('duplicates', '-')} / {acked.get('gaps', '-')} / "
            f"{acked.get('out_of_order', '-')}"),
        "publish retries (deduplicated acks)": f"{acked.get('publish_retries', '-')} ({acked.get('duplicate_acks', '-')})",
        "durables missing acked msgs (redelivered)": (
            f"{missing} ({sum(v.get('redelivered', 0) for v in dur.values() if isinstance(v, dict))})"),
        "bridge states / rev regressions": f"{bridge.get('stream_msgs', '-')} / {bridge.get('rev_regressions', '-')}",
        "slowest recovery (core / web / request / js publish / durable)": " / ".join(
            f"{worst[k]:.1f} s" if k in worst else "-"
            for k in ("core", "web", "request-reply", "js-publish", "durable")),
        "converged after faults": (f"{conv['converged_after_s']} s" if conv.get("converged_after_s") is not None
                                   else "no"),
        "broker RSS first -> last third (MB)": ", ".join(
            f"{v['first_third_mb']:.0f}->{v['last_third_mb']:.0f}" for k, v in sorted(rss.items())
            if k.startswith("node") and isinstance(v, dict)),
        "bad logins refused / accepted": f"{bad.get('refused', '-')} / {bad.get('accepted', '-')}",
        "slow consumer: fast subscriber got": ", ".join(
            f"{s['fast_received']}/{s['published']}" for s in slow_runs) or "-",
        "stalled subscriber closed by the server (reason)": ", ".join(
            f"yes ({s.get('slow_closed_reason')})" if s.get("slow_closed_by_server") else "no"
            for s in slow_runs) or "-",
        "crashes / panics": str(len(crash.get("details", []))),
    }
    return row


def update_reliability(path: Path, results: List[dict]):
    """Rewrite the chaos-system section of `path` (made if missing) with
    these results, keeping the other server's last figures."""
    text = path.read_text() if path.exists() else ""
    data = {}
    m = DATA.search(text)
    if m:
        try:
            data = json.loads(m.group(1))
        except ValueError:
            data = {}
    for r in results:
        data[r["server"]] = {"row": figures_row(r), "replay": r["replay"], "report": f"{r['state_dir']}/report.md",
                             "violations": [f"{c['name']}: {c['summary']}" for c in r["checks"] if not c["ok"]]}
    section = render_section(data)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def render_section(data: Dict[str, dict]) -> str:
    servers = [s for s in ("tribune", "nats") if s in data]
    rows: List[str] = []
    for s in servers:
        for k in data[s]["row"]:
            if k not in rows:
                rows.append(k)
    out = [BEGIN, "", "| | " + " | ".join(SERVER_LABEL[s] for s in servers) + " |",
           "|---|" + "---|" * len(servers)]
    for k in rows:
        out.append(f"| {k} | " + " | ".join(data[s]["row"].get(k, "-") for s in servers) + " |")
    out.append("")
    for s in servers:
        v = data[s]
        out.append(f"- {SERVER_LABEL[s]}: replay with `{v['replay']}`"
                   + (f"; violations: {'; '.join(v['violations'])}" if v["violations"] else ""))
    out += ["", f"<!-- chaos-system-data: {json.dumps(data, sort_keys=True)} -->", END]
    return "\n".join(out)


def one_line(r: dict) -> str:
    bad = [c["name"] for c in r["checks"] if not c["ok"]]
    return (f"{SERVER_LABEL.get(r['server'], r['server'])}: {'PASS' if r['ok'] else 'FAIL'}"
            + (f" ({', '.join(bad)})" if bad else "") + f"; report {r['state_dir']}/report.md")
