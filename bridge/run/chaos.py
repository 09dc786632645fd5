#!/usr/bin/env python3
"""`make chaos-system`: a chaos run of the whole Tribune system.

The system `make run` assembles (3 brokers with JetStream and WebSocket,
tribune-auth, the feed simulator, 3 bridges) runs on loopback under steady
load while faults are injected one at a time from a seeded plan: kill -9
and restart of a broker, a bridge or tribune-auth; SIGSTOP/SIGCONT; a node
cut off with iptables; a rolling restart through lame duck; a subscriber
that stops reading; a flood of bad logins. Invariants are checked
throughout and at the end; the report goes to STATE/<server>/report.{json,md}.
The same scenario runs against nats-server (--server nats or both): the
auth callout and the bridge speak the protocol, so it is the same system.

  bridge/run/chaos.py [--server tribune|nats|both] [--seconds N] [--seed S]
                      [--write-reliability RELIABILITY.md]

Exit status 0 when every invariant held on every server run, 1 otherwise,
2 on bad usage. The seed is printed first; --seed replays a run's plan.
See bridge/run/chaos/__init__.py for the modules.
"""

import argparse
import asyncio
import os
import random
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos.faults import KINDS  # noqa: E402
from chaos.report import one_line, update_reliability  # noqa: E402
from chaos.run import Run  # noqa: E402
from chaos.system import ROOT  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", choices=["tribune", "nats", "both"], default="both")
    p.add_argument("--seconds", type=float, default=300, help="length of the fault phase (default 300)")
    p.add_argument("--seed", type=int, default=None, help="replay this seed (default: random, printed)")
    p.add_argument("--kinds", default="", help=f"comma-separated fault kinds (default all: {','.join(KINDS)})")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="keys, configs, logs, reports (default $CARGO_TARGET_DIR or target, /chaos-system/<server>)")
    p.add_argument("--write-reliability", type=Path, default=None, metavar="FILE",
                   help="update the chaos-system section of FILE (RELIABILITY.md) with this run's figures")
    p.add_argument("--recover-bound", type=float, default=30.0,
                   help="seconds within which every flow must work again after a fault (default 30)")
    p.add_argument("--rss-factor", type=float, default=3.0,
                   help="a broker's last-third RSS may be at most this times its first third's ... (default 3)")
    p.add_argument("--rss-slack-mb", type=float, default=128.0, help="... plus this many MB (default 128)")
    p.add_argument("--js-rate", type=float, default=30.0, help="acknowledged JetStream publishes per second, all publishers")
    p.add_argument("--rate", type=float, default=5.0, help="simulator MQTT messages per second (run-local's RUN_RATE)")
    p.add_argument("--port-offset", type=int, default=1300,
                   help="run-local's RUN_PORT_OFFSET (default 1300, away from make run's ports)")
    a = p.parse_args(argv)
    a.kinds_default = not a.kinds
    # Settings that change what a seed replays, beyond the ones make passes.
    a.tuned = [f"--{name.replace('_', '-')} {getattr(a, name):g}" for name in
               ("recover_bound", "js_rate", "rate", "rss_factor", "rss_slack_mb")
               if getattr(a, name) != p.get_default(name)]
    a.kind_list = [k.strip() for k in a.kinds.split(",") if k.strip()] or list(KINDS)
    unknown = [k for k in a.kind_list if k not in KINDS]
    if unknown:
        p.error(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    # A TERM (make interrupted, a CI timeout) stops the system it started,
    # as Ctrl-C does: the run's cleanup kills every process and heals every
    # partition, instead of leaving brokers and iptables rules behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 2**31)
    servers = ["tribune", "nats"] if a.server == "both" else [a.server]
    print(f"chaos-system: seed {seed} (--seed {seed} replays), servers {', '.join(servers)}, "
          f"fault phase {a.seconds:.0f} s", flush=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    base = a.state_dir or ((target if target.is_absolute() else ROOT / target) / "chaos-system")
    results = []
    for server in servers:
        run = Run(server, base / server, seed, a.seconds, a.kind_list, a)
        try:
            results.append(asyncio.run(run.main()))
        except KeyboardInterrupt:
            print("chaos-system: interrupted", file=sys.stderr)
            return 130
    if a.write_reliability:
        path = a.write_reliability if a.write_reliability.is_absolute() else Path.cwd() / a.write_reliability
        update_reliability(path, results)
        print(f"chaos-system: updated {path}")
    print()
    for r in results:
        print("chaos-system: " + one_line(r))
    if not all(r["ok"] for r in results):
        print(f"chaos-system: FAILED; replay with seed {seed}: {' / '.join(r['replay'] for r in results if not r['ok'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
