"""Client workload for the rolling-upgrade test: publishes acknowledged
JetStream messages to an R3 stream across the cluster until told to stop.

    python upgrade_workload.py --servers nats://127.0.0.1:4222,... --out result.json --stop stop.flag

"Acknowledged" is a JetStream PubAck: the stream (three replicas, one per
node) has the message on a quorum's disks. The publisher retries the same
message id (`Nats-Msg-Id`, so a retry of a stored message is a duplicate,
not a second copy) until it is acknowledged, so ids are acknowledged in
order with no gaps. At the end the whole stream is read back: every
acknowledged id must be in it, once.

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
import nats.errors
import nats.js.errors
from nats.js.api import StorageType, StreamConfig

SUBJECT = "tribune.upgrade.test"
STREAM = "UPGRADE"


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
    """JetStream acknowledgement: the PubAck of an R3 stream."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.pub_counters, self.sub_counters = Counters(), Counters()

    async def start(self) -> None:
        self.pub = await connect(self.servers, "upgrade-publisher", self.pub_counters)
        self.js = self.pub.jetstream(timeout=2.0)
        config = StreamConfig(name=STREAM, subjects=[SUBJECT], num_replicas=3,
                              storage=StorageType.FILE)
        # The meta group may still be electing its first leader.
        for _ in range(150):
            try:
                await self.js.add_stream(config)
                return
            except (nats.errors.Error, asyncio.TimeoutError):
                await asyncio.sleep(0.2)
        raise RuntimeError(f"could not create the {STREAM} stream")

    async def publish(self, msg_id: int) -> bool:
        try:
            ack = await self.js.publish(SUBJECT, str(msg_id).encode(),
                                        headers={"Nats-Msg-Id": str(msg_id)})
        except (nats.errors.Error, asyncio.TimeoutError):
            # Timeouts, no responders while a stream leader is elected
            # (NoStreamResponseError), a closed connection: retry the id.
            return False
        return ack.stream == STREAM

    async def recorded_ids(self) -> list[int]:
        """Every message in the stream, in order (duplicates kept, so the
        test can see one)."""
        reader = await connect(self.servers, "upgrade-reader", self.sub_counters)
        js = reader.jetstream(timeout=5.0)
        info = await js.stream_info(STREAM)
        ids: list[int] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            for _ in range(20):
                try:
                    msg = await js.get_msg(STREAM, seq)
                    ids.append(int(msg.data))
                    break
                except nats.js.errors.NotFoundError:
                    break
                except (nats.errors.Error, asyncio.TimeoutError):
                    await asyncio.sleep(0.2)
        await reader.drain()
        return ids

    async def close(self) -> None:
        await self.pub.drain()


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
        "recorded": recorded,
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
