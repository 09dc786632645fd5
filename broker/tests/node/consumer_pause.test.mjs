// nats.js's consumer pause and resume (@nats-io/jetstream
// jsm.consumers.pause / resume) against nats-server (the reference) and
// tribune-broker: a paused pull consumer delivers nothing, its info says
// so, and after resume everything comes. Servers: servers.mjs. Waits only
// guard against hanging; nothing asserts a duration.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";

import { flavors, startServer } from "./servers.mjs";

for (const [label, bin] of flavors) {
  test(`nats.js consumer pause and resume against ${label}`, async () => {
    const srv = await startServer(bin);
    const nc = await connect({ servers: `127.0.0.1:${srv.port}` });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "JOBS", subjects: ["jobs.>"] });
      const js = jetstream(nc);
      await jsm.consumers.add("JOBS", { durable_name: "w", ack_policy: AckPolicy.Explicit });
      for (let i = 1; i <= 2; i++) {
        await js.publish(`jobs.${i}`, `j${i}`);
      }

      const until = new Date(Date.now() + 3_600_000);
      const paused = await jsm.consumers.pause("JOBS", "w", until);
      assert.equal(paused.paused, true, label);
      assert.equal(new Date(paused.pause_until).getTime(), until.getTime(), label);
      assert.ok(paused.pause_remaining > 0, label);

      const w = await js.consumers.get("JOBS", "w");
      const info = await w.info();
      assert.equal(info.paused, true, label);
      assert.ok(info.pause_remaining > 0, label);
      assert.equal(new Date(info.config.pause_until).getTime(), until.getTime(), label);

      // Nothing while paused: the fetch ends empty when it expires.
      const held = [];
      for await (const m of await w.fetch({ max_messages: 2, expires: 1000 })) {
        held.push(m.string());
      }
      assert.deepEqual(held, [], label);

      const resumed = await jsm.consumers.resume("JOBS", "w");
      assert.equal(resumed.paused, false, label);
      const got = [];
      while (got.length < 2) {
        for await (const m of await w.fetch({ max_messages: 2, expires: 2000 })) {
          got.push(m.string());
          m.ack();
        }
      }
      assert.deepEqual(got, ["j1", "j2"], label);
      const after = await w.info();
      assert.equal(after.paused, undefined, label);
    } finally {
      await nc.close();
      await srv.stop();
    }
  });
}
