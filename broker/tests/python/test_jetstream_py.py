"""nats-py JetStream and KV, end to end, against nats-server and tribune-broker.

Servers are started with JetStream (`-js -sd DIR`), one per test module and
server kind, with the helpers of test_nats_py.py.

Which servers run (the same rule as broker/tests/common/js.rs):
  JS_FLAVORS unset  nats-server, plus tribune-broker if it answers $JS.API.INFO
  JS_FLAVORS=nats-server,tribune  both; JS_FLAVORS=nats-server  the reference only

Timeouts are guards against hanging, never assertions about speed.
"""

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StreamConfig,
)
from nats.js.errors import (
    BadRequestError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)

from test_nats_py import WAIT, Server, connect, nats_server_bin, run, tribune_bin


def _probe(binary: str) -> bool:
    """Does `binary` answer $JS.API.INFO with an account info response?"""
    if not Path(binary).is_file():
        return False
    with tempfile.TemporaryDirectory() as d:
        try:
            srv = Server(binary, Path(d) / "probe", args=("-js", "-sd", str(Path(d) / "js")))
        except BaseException:  # pytest.fail raises Failed (a BaseException)
            return False
        try:

            async def ask():
                nc = await connect(srv)
                try:
                    msg = await nc.request("$JS.API.INFO", b"", timeout=3)
                    body = msg.data.decode(errors="replace")
                    return "account_info_response" in body and '"error"' not in body
                except Exception:
                    return False
                finally:
                    await nc.close()

            return asyncio.run(ask())
        finally:
            srv.stop()


def _flavors():
    out = ["nats-server"]
    env = os.environ.get("JS_FLAVORS")
    if env is not None:
        if any(f.strip().startswith("tribune") for f in env.split(",")):
            out.append("tribune")
    elif _probe(tribune_bin()):
        out.append("tribune")
    return out


BINARIES = {"nats-server": nats_server_bin, "tribune": tribune_bin}


@pytest.fixture(scope="module", params=_flavors())
def js_server(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(request.param)
    srv = Server(BINARIES[request.param](), work / "srv", args=("-js", "-sd", str(work / "js")))
    yield srv
    srv.stop()


async def js_connect(server):
    nc = await connect(server)
    return nc, nc.jetstream(timeout=WAIT)


def test_stream_and_publish_ack(js_server):
    async def main():
        nc, js = await js_connect(js_server)
        info = await js.add_stream(name="PY_ORDERS", subjects=["pyorders.>"])
        assert info.config.name == "PY_ORDERS"
        assert info.config.max_msgs == -1
        ack = await js.publish("pyorders.1", b"one")
        assert (ack.stream, ack.seq, ack.duplicate) == ("PY_ORDERS", 1, None)
        ack = await js.publish("pyorders.2", b"two", headers={"Nats-Msg-Id": "id2"})
        assert ack.seq == 2
        dup = await js.publish("pyorders.2", b"two", headers={"Nats-Msg-Id": "id2"})
        assert (dup.seq, dup.duplicate) == (2, True)
        si = await js.stream_info("PY_ORDERS")
        assert (si.state.messages, si.state.first_seq, si.state.last_seq) == (2, 1, 2)
        msg = await js.get_msg("PY_ORDERS", 1)
        assert (msg.subject, msg.data) == ("pyorders.1", b"one")
        names = await js.streams_info()
        assert "PY_ORDERS" in [s.config.name for s in names]
        with pytest.raises(BadRequestError) as e:
            await js.publish("pyorders.3", b"x", headers={"Nats-Expected-Last-Sequence": "1"})
        assert e.value.err_code == 10071
        with pytest.raises(NotFoundError):
            await js.stream_info("PY_NOPE")
        await js.purge_stream("PY_ORDERS")
        assert (await js.stream_info("PY_ORDERS")).state.messages == 0
        assert await js.delete_stream("PY_ORDERS")
        await nc.close()

    run(main())


def test_pull_subscribe_fetch_ack(js_server):
    async def main():
        nc, js = await js_connect(js_server)
        await js.add_stream(name="PY_PULL", subjects=["pypull.*"])
        for i in range(10):
            await js.publish(f"pypull.{i % 3}", str(i).encode())
        sub = await js.pull_subscribe("pypull.*", durable="worker", stream="PY_PULL")
        got = await sub.fetch(4, timeout=WAIT)
        assert [m.data for m in got] == [b"0", b"1", b"2", b"3"]
        for m in got:
            await m.ack_sync()
        # The rest, then an empty fetch times out (no error beyond that).
        rest = await sub.fetch(100, timeout=2)
        assert [m.metadata.sequence.stream for m in rest] == list(range(5, 11))
        for m in rest:
            await m.ack_sync()
        with pytest.raises(NatsTimeout):
            await sub.fetch(1, timeout=1)
        ci = await js.consumer_info("PY_PULL", "worker")
        assert (ci.num_ack_pending, ci.num_pending, ci.ack_floor.stream_seq) == (0, 0, 10)

        # nak -> the same message again, delivered twice.
        await js.publish("pypull.0", b"again")
        (m,) = await sub.fetch(1, timeout=WAIT)
        await m.nak()
        (m2,) = await sub.fetch(1, timeout=WAIT)
        assert m2.metadata.sequence.stream == m.metadata.sequence.stream == 11
        assert m2.metadata.num_delivered == 2
        await m2.ack_sync()
        await nc.close()

    run(main())


def test_durable_consumer_config_and_resume(js_server):
    async def main():
        nc, js = await js_connect(js_server)
        await js.add_stream(StreamConfig(name="PY_DUR", subjects=["pydur.>"]))
        for i in range(6):
            await js.publish("pydur.x", str(i).encode())
        cfg = ConsumerConfig(
            durable_name="keeper",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=3,
            filter_subject="pydur.>",
        )
        ci = await js.add_consumer("PY_DUR", cfg)
        assert ci.name == "keeper"
        assert ci.num_pending == 4
        sub = await js.pull_subscribe_bind("keeper", stream="PY_DUR")
        (m,) = await sub.fetch(1, timeout=WAIT)
        assert m.data == b"2"
        await m.ack_sync()
        await sub.unsubscribe()
        # A new subscription on the same durable goes on where it stopped.
        sub = await js.pull_subscribe_bind("keeper", stream="PY_DUR")
        msgs = await sub.fetch(10, timeout=2)
        assert [m.data for m in msgs] == [b"3", b"4", b"5"]
        names = [c.name for c in await js.consumers_info("PY_DUR")]
        assert names == ["keeper"]
        assert await js.delete_consumer("PY_DUR", "keeper")
        with pytest.raises(NotFoundError):
            await js.consumer_info("PY_DUR", "keeper")
        await nc.close()

    run(main())


def test_push_subscribe_and_workqueue(js_server):
    async def main():
        nc, js = await js_connect(js_server)
        await js.add_stream(
            name="PY_WQ", subjects=["pywq.>"], retention=RetentionPolicy.WORK_QUEUE
        )
        got = asyncio.Queue()

        async def handler(msg):
            await got.put(msg.data)
            await msg.ack()

        await js.subscribe("pywq.>", cb=handler, durable="pusher", stream="PY_WQ", manual_ack=True)
        for i in range(3):
            await js.publish("pywq.job", str(i).encode())
        seen = [await asyncio.wait_for(got.get(), WAIT) for _ in range(3)]
        assert seen == [b"0", b"1", b"2"]
        # A second unfiltered consumer on a work queue is refused.
        with pytest.raises(BadRequestError) as e:
            await js.add_consumer(
                "PY_WQ", ConsumerConfig(durable_name="other", ack_policy=AckPolicy.EXPLICIT)
            )
        assert e.value.err_code == 10099
        # Acked work items leave the stream.
        for _ in range(100):
            if (await js.stream_info("PY_WQ")).state.messages == 0:
                break
            await asyncio.sleep(0.1)
        assert (await js.stream_info("PY_WQ")).state.messages == 0
        await nc.close()

    run(main())


def test_key_value(js_server):
    async def main():
        nc, js = await js_connect(js_server)
        kv = await js.create_key_value(bucket="pycfg", history=5)
        assert await kv.put("color", b"red") == 1
        assert await kv.put("size", b"L") == 2
        assert await kv.update("color", b"blue", last=1) == 3
        e = await kv.get("color")
        assert (e.value, e.revision) == (b"blue", 3)
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.update("color", b"stale", last=1)
        assert await kv.create("shape", b"round") == 4
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.create("shape", b"square")
        assert sorted(await kv.keys()) == ["color", "shape", "size"]
        hist = await kv.history("color")
        assert [h.value for h in hist] == [b"red", b"blue"]

        await kv.delete("size")
        with pytest.raises(KeyNotFoundError):
            await kv.get("size")
        await kv.purge("color")
        with pytest.raises(KeyNotFoundError):
            await kv.get("color")
        assert await kv.keys() == ["shape"]

        # watch: current values first (then a None marker), then updates.
        w = await kv.watchall()
        first = await w.updates(timeout=WAIT)
        while first is not None and first.key != "shape":
            first = await w.updates(timeout=WAIT)
        assert first is not None and first.value == b"round"
        marker = await w.updates(timeout=WAIT)
        while marker is not None:
            marker = await w.updates(timeout=WAIT)
        await kv.put("shape", b"oval")
        upd = await w.updates(timeout=WAIT)
        assert (upd.key, upd.value) == ("shape", b"oval")
        await w.stop()

        status = await kv.status()
        assert status.bucket == "pycfg"
        assert await js.delete_key_value("pycfg")
        await nc.close()

    run(main())


def test_mirror_and_source(js_server):
    """nats-py's StreamSource for a mirror and a filtered, transformed
    source: what they hold and what stream_info says of them."""
    from nats.js.api import StreamSource, SubjectTransform

    async def main():
        nc, js = await js_connect(js_server)
        await js.add_stream(name="PY_ORIGIN", subjects=["pyorigin.>"])
        for i in range(4):
            await js.publish(f"pyorigin.{i % 2}", str(i).encode())
        await js.add_stream(StreamConfig(name="PY_MIRROR", mirror=StreamSource(name="PY_ORIGIN")))
        await js.add_stream(
            StreamConfig(
                name="PY_SOURCED",
                sources=[
                    StreamSource(
                        name="PY_ORIGIN",
                        subject_transforms=[
                            SubjectTransform(src="pyorigin.1", dest="pysourced.one")
                        ],
                    )
                ],
            )
        )

        async def holds(stream, n):
            for _ in range(int(WAIT / 0.1)):
                if (await js.stream_info(stream)).state.messages == n:
                    return
                await asyncio.sleep(0.1)
            pytest.fail(f"{stream} never held {n} messages")

        await holds("PY_MIRROR", 4)
        await holds("PY_SOURCED", 2)
        mirror = await js.stream_info("PY_MIRROR")
        assert mirror.mirror.name == "PY_ORIGIN"
        assert mirror.mirror.lag == 0
        assert mirror.config.mirror.name == "PY_ORIGIN"
        assert not mirror.config.subjects
        got = await js.get_msg("PY_MIRROR", 3)
        assert (got.subject, got.data) == ("pyorigin.0", b"2")
        sourced = await js.stream_info("PY_SOURCED")
        assert [s.name for s in sourced.sources] == ["PY_ORIGIN"]
        got = await js.get_msg("PY_SOURCED", 2)
        assert (got.subject, got.data) == ("pysourced.one", b"3")
        assert got.headers["Nats-Stream-Source"].split(" ")[:5] == [
            "PY_ORIGIN", "4", "pyorigin.1", "pysourced.one", "pyorigin.1"
        ]
        with pytest.raises(BadRequestError) as e:
            await js.add_stream(
                StreamConfig(name="PY_BAD", subjects=["x"], mirror=StreamSource(name="PY_ORIGIN"))
            )
        assert e.value.err_code == 10034
        await nc.close()

    run(main())


def test_durable_source_drains_a_work_queue(js_server):
    """nats-py's StreamConsumerSource (durable sourcing, ADR-60): a source
    reads a pre-created flow_control consumer of a work queue stream; what
    it stores is acknowledged through flow control and leaves the queue.
    A consumer with another ack policy is refused as a source."""
    from nats.js.api import StreamConsumerSource, StreamSource

    async def main():
        nc, js = await js_connect(js_server)
        await js.add_stream(
            name="PY_JOBS", subjects=["pyjobs.>"], retention=RetentionPolicy.WORK_QUEUE
        )
        ci = await js.add_consumer(
            "PY_JOBS",
            ConsumerConfig(
                durable_name="drain",
                deliver_subject="pydrain.deliver",
                ack_policy=AckPolicy.FLOW_CONTROL,
            ),
        )
        assert ci.config.ack_policy == AckPolicy.FLOW_CONTROL
        assert ci.config.flow_control is True
        assert ci.config.idle_heartbeat == 1.0
        with pytest.raises(BadRequestError) as e:
            await js.add_consumer(
                "PY_JOBS",
                ConsumerConfig(durable_name="pulled", ack_policy=AckPolicy.FLOW_CONTROL),
            )
        assert e.value.err_code == 10218
        for i in range(5):
            await js.publish(f"pyjobs.{i}", f"job{i}".encode())
        await js.add_stream(
            StreamConfig(
                name="PY_DONE",
                sources=[
                    StreamSource(
                        name="PY_JOBS",
                        consumer=StreamConsumerSource(
                            name="drain", deliver_subject="pydrain.deliver"
                        ),
                    )
                ],
            )
        )

        async def until(what, check):
            for _ in range(int(WAIT / 0.1)):
                if await check():
                    return
                await asyncio.sleep(0.1)
            pytest.fail(f"never: {what}")

        async def holds(stream, n):
            return (await js.stream_info(stream)).state.messages == n

        await until("PY_DONE holds 5", lambda: holds("PY_DONE", 5))
        await until("PY_JOBS is drained", lambda: holds("PY_JOBS", 0))
        info = await js.stream_info("PY_DONE")
        assert info.config.sources[0].consumer.name == "drain"
        got = await js.get_msg("PY_DONE", 5)
        assert (got.subject, got.data) == ("pyjobs.4", b"job4")
        ci = await js.consumer_info("PY_JOBS", "drain")
        assert ci.ack_floor.stream_seq == 5
        with pytest.raises(BadRequestError) as e:
            await js.add_stream(
                StreamConfig(
                    name="PY_BAD",
                    sources=[
                        StreamSource(
                            name="PY_JOBS",
                            filter_subject="pyjobs.1",
                            consumer=StreamConsumerSource(name="drain", deliver_subject="x"),
                        )
                    ],
                )
            )
        assert e.value.err_code == 10215
        await nc.close()

    run(main())
