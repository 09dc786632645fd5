"""Client workload for the rolling-upgrade test: publishes acknowledged
messages and serves them, across the cluster, until told to stop.

    python upgrade_workload.py --servers nats://127.0.0.1:4222,... --out result.json --stop stop.flag

"Acknowledged" is a request/reply today: a responder (its own connection)
records each message, then replies; the publisher counts a message as
acknowledged only when the reply arrives, and retries the same message id
until it does, so ids are acknowledged in order with no gaps. The ack path
is the `Acknowledged` interface below; JetStream fits it as js.publish()
(the PubAck is the acknowledgement) and reading the stream back for
recorded_ids().

Progress (acknowledged count) goes to <out>.progress while running; the
final result, written when the stop file appears, is JSON with the
acknowledged and recorded ids and each client's reconnect count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

import nats
from nats.errors import ConnectionClosedError, NoRespondersError, TimeoutError as NatsTimeout

SUBJECT = "tribune.upgrade.test"


class Counters:
    def __init__(self) -> None:
        self.reconnects = 0
        self.disconnects = 0
        self.errors: list[str] = []

    async def on_reconnect(self) -> None:
        self.reconnects += 1

    async def on_disconnect(self) -> None:
        self.disconnects += 1

    async def on_error(self, e: Exception) -> None:
        self.errors.append(repr(e)[:200])


async def connect(servers: list[str], name: str, c: Counters):
    return await nats.connect(
        servers=servers, name=name, allow_reconnect=True, max_reconnect_attempts=-1,
        reconnect_time_wait=0.2, connect_timeout=2, ping_interval=2, max_outstanding_pings=2,
        reconnected_cb=c.on_reconnect, disconnected_cb=c.on_disconnect, error_cb=c.on_error)


class Acknowledged:
    """Request/reply acknowledgement: the responder records, then replies."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.recorded: set[int] = set()
        self.pub_counters, self.sub_counters = Counters(), Counters()

    async def start(self) -> None:
        self.sub = await connect(self.servers, "upgrade-responder", self.sub_counters)

        async def handle(msg) -> None:
            self.recorded.add(int(msg.data))
            await msg.respond(b"+ACK")

        await self.sub.subscribe(SUBJECT, queue="upgrade", cb=handle)
        await self.sub.flush()
        self.pub = await connect(self.servers, "upgrade-publisher", self.pub_counters)

    async def publish(self, msg_id: int) -> bool:
        try:
            reply = await self.pub.request(SUBJECT, str(msg_id).encode(), timeout=1.0)
        except (NatsTimeout, NoRespondersError, ConnectionClosedError, asyncio.TimeoutError):
            return False
        return reply.data == b"+ACK"

    async def recorded_ids(self) -> set[int]:
        return set(self.recorded)

    async def close(self) -> None:
        await self.pub.drain()
        await self.sub.drain()


async def run(servers: list[str], out: Path, stop: Path) -> None:
    ack = Acknowledged(servers)
    await ack.start()
    acked: list[int] = []
    retries = 0
    msg_id = 0
    progress = out.with_suffix(".progress")
    while not stop.exists():
        if await ack.publish(msg_id):
            acked.append(msg_id)
            msg_id += 1
            if msg_id % 20 == 0:
                tmp = progress.with_suffix(".tmp")
                tmp.write_text(str(len(acked)))
                os.replace(tmp, progress)
        else:
            retries += 1
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.005)
    recorded = await ack.recorded_ids()
    result = {
        "acked": acked,
        "recorded": sorted(recorded),
        "retries": retries,
        "publisher": vars(ack.pub_counters),
        "responder": vars(ack.sub_counters),
    }
    await ack.close()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--servers", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--stop", required=True, type=Path)
    a = p.parse_args()
    asyncio.run(run(a.servers.split(","), a.out, a.stop))


if __name__ == "__main__":
    main()
