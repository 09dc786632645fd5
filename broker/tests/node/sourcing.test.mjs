// nats.js mirrors and sources against nats-server (the reference) and
// tribune-broker: a mirror of a stream, a filtered source, what they hold
// and what stream info says of them. Servers and binaries: servers.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

import { flavors, startServer } from "./servers.mjs";

/// Poll until `stream` holds `n` messages (a guard against hanging only).
async function holds(jsm, stream, n, label) {
  for (let i = 0; i < 150; i++) {
    const si = await jsm.streams.info(stream);
    if (si.state.messages === n) return si;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${label}: ${stream} never held ${n} messages`);
}

for (const [label, bin] of flavors) {
  test(`nats.js mirrors and sources against ${label}`, async () => {
    const srv = await startServer(bin);
    const nc = await connect({ servers: `127.0.0.1:${srv.port}` });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "SCORES", subjects: ["scores.>"] });
      const js = jetstream(nc);
      for (let i = 1; i <= 6; i++) {
        await js.publish(`scores.${i % 2 ? "football" : "tennis"}`, `s${i}`);
      }
      await jsm.streams.add({ name: "BACKUP", mirror: { name: "SCORES" } });
      await jsm.streams.add({
        name: "FOOTBALL",
        sources: [{ name: "SCORES", filter_subject: "scores.football" }],
      });
      const backup = await holds(jsm, "BACKUP", 6, label);
      assert.equal(backup.mirror.name, "SCORES", label);
      assert.equal(backup.mirror.lag, 0, label);
      const football = await holds(jsm, "FOOTBALL", 3, label);
      assert.deepEqual(football.sources.map((s) => s.name), ["SCORES"], label);
      assert.equal(football.sources[0].filter_subject, "scores.football", label);

      await js.publish("scores.football", "late goal");
      await holds(jsm, "BACKUP", 7, label);
      await holds(jsm, "FOOTBALL", 4, label);
      const m = await jsm.streams.getMessage("BACKUP", { seq: 7 });
      assert.equal(m.string(), "late goal", label);
      const f = await jsm.streams.getMessage("FOOTBALL", { seq: 4 });
      assert.equal(f.string(), "late goal", label);
      assert.deepEqual(
        f.header.get("Nats-Stream-Source").split(" ").slice(0, 5),
        ["SCORES", "7", "scores.football", ">", "scores.football"],
        label,
      );
      await assert.rejects(
        jsm.streams.add({ name: "BAD", subjects: ["bad"], mirror: { name: "SCORES" } }),
        /stream mirrors can not contain subjects/,
        label,
      );
    } finally {
      await nc.close();
      srv.stop();
    }
  });
}

// Durable sourcing (ADR-60): a source reading a pre-created flow_control
// consumer of a work queue stream drains it, acknowledging through flow
// control only what it stored.
for (const [label, bin] of flavors) {
  test(`nats.js durable source drains a work queue against ${label}`, async () => {
    const srv = await startServer(bin);
    const nc = await connect({ servers: `127.0.0.1:${srv.port}` });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "JOBS", subjects: ["jobs.>"], retention: "workqueue" });
      const ci = await jsm.consumers.add("JOBS", {
        durable_name: "drain",
        deliver_subject: "drain.deliver",
        ack_policy: "flow_control",
      });
      assert.equal(ci.config.ack_policy, "flow_control", label);
      assert.equal(ci.config.flow_control, true, label);
      await assert.rejects(
        jsm.consumers.add("JOBS", { durable_name: "late", deliver_subject: "late.d",
          ack_policy: "flow_control", max_deliver: 2 }),
        /flow control ack policy requires unset max deliver/,
        label,
      );
      const js = jetstream(nc);
      for (let i = 1; i <= 4; i++) await js.publish(`jobs.${i}`, `job${i}`);
      await jsm.streams.add({
        name: "DONE",
        sources: [{ name: "JOBS", consumer: { name: "drain", deliver_subject: "drain.deliver" } }],
      });
      await holds(jsm, "DONE", 4, label);
      await holds(jsm, "JOBS", 0, label);
      const done = await jsm.streams.info("DONE");
      assert.deepEqual(done.config.sources[0].consumer,
        { name: "drain", deliver_subject: "drain.deliver" }, label);
      const m = await jsm.streams.getMessage("DONE", { seq: 4 });
      assert.equal(m.string(), "job4", label);
      assert.equal((await jsm.consumers.info("JOBS", "drain")).ack_floor.stream_seq, 4, label);
    } finally {
      await nc.close();
      srv.stop();
    }
  });
}
