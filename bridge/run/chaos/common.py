"""The run's clock and log, and small helpers every module needs.

Times in the report are seconds since the run started (`Clock.now`), from
the monotonic clock, so that a fault, a recovery and a log line can be put
side by side without wall-clock jumps.
"""

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Awaitable, Callable, Optional


class Clock:
    """Seconds since the run started."""

    def __init__(self):
        self.start = time.monotonic()
        self.wall_start = time.time()

    def now(self) -> float:
        return time.monotonic() - self.start


class Log:
    """Timestamped lines to stdout and to a file in the state dir."""

    def __init__(self, clock: Clock, path: Optional[Path] = None, prefix: str = ""):
        self.clock = clock
        self.prefix = prefix
        self.file = open(path, "a", buffering=1) if path else None

    def __call__(self, msg: str):
        line = f"[{self.clock.now():7.1f}s] {self.prefix}{msg}"
        print(line, flush=True)
        if self.file:
            self.file.write(line + "\n")

    def close(self):
        if self.file:
            self.file.close()
            self.file = None


async def http_json(host: str, port: int, path: str, timeout: float = 3.0):
    """GET a monitoring endpoint in a worker thread (the event loop keeps
    serving every client meanwhile); the parsed JSON. Raises OSError or
    ValueError."""

    def get():
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as r:
            return json.loads(r.read())

    return await asyncio.to_thread(get)


class Fatal(Exception):
    """Raised inside a poll_until check: stop waiting, this will not get
    better (a process exited)."""


async def http_ok(host: str, port: int, path: str, timeout: float = 3.0) -> bool:
    """Whether a GET answers 200 (a /healthz of any body)."""

    def get():
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as r:
                return r.status == 200
        except (OSError, ValueError):
            return False

    return await asyncio.to_thread(get)


async def poll_until(
    check: Callable[[], Awaitable[Optional[str]]],
    deadline: float,
    interval: float = 0.5,
) -> Optional[str]:
    """Await check() (None = done, else what is still missing) until done or
    `deadline` seconds have passed. Returns None when done, else the last
    problem. An exception from check() counts as "not yet" (a node that is
    restarting refuses connections; that is what we are waiting out)."""
    end = time.monotonic() + deadline
    problem = "never checked"
    while True:
        try:
            problem = await check()
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - every other failure means "not yet"
            problem = f"{type(e).__name__}: {e}"
        if problem is None:
            return None
        if time.monotonic() >= end:
            return problem
        await asyncio.sleep(interval)


class Findings:
    """Invariant violations as they are seen. Continuous checks (a crash, an
    ack that went backwards, a forged login accepted) add theirs while the
    run goes; the final checks in invariants.py add the rest."""

    def __init__(self, log: Log):
        self.log = log
        self.items = []

    def violate(self, invariant: str, detail: str):
        self.items.append({"t": round(self.log.clock.now(), 1), "invariant": invariant, "detail": detail})
        self.log(f"VIOLATION [{invariant}] {detail}")

    def of(self, invariant: str):
        return [v for v in self.items if v["invariant"] == invariant]
