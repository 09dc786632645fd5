// nats.js (@nats-io/transport-node, @nats-io/jetstream, @nats-io/kv)
// against nats-server (the reference) and tribune-broker: streams, acked
// publishes with de-duplication, a durable pull consumer, an ordered
// consumer and a KV bucket. Servers and binaries: servers.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

import { flavors, startServer } from "./servers.mjs";

for (const [label, bin] of flavors) {
  test(`nats.js JetStream and KV against ${label}`, async () => {
    const srv = await startServer(bin);
    const nc = await connect({ servers: `127.0.0.1:${srv.port}` });
    try {
      const jsm = await jetstreamManager(nc);
      const si = await jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] });
      assert.equal(si.config.max_msgs, -1, label);
      assert.equal(si.config.num_replicas, 1, label);

      const js = jetstream(nc);
      for (let i = 1; i <= 10; i++) {
        const pa = await js.publish(`orders.${i}`, `o${i}`, { msgID: `id-${i}` });
        assert.equal(pa.seq, i, label);
        assert.equal(pa.stream, "ORDERS", label);
      }
      const dup = await js.publish("orders.1", "again", { msgID: "id-1" });
      assert.equal(dup.duplicate, true, label);
      assert.equal(dup.seq, 1, label);

      await jsm.consumers.add("ORDERS", { durable_name: "worker", ack_policy: AckPolicy.Explicit });
      const worker = await js.consumers.get("ORDERS", "worker");
      const got = [];
      while (got.length < 10) {
        const batch = await worker.fetch({ max_messages: 4, expires: 2000 });
        for await (const m of batch) {
          got.push(m.string());
          m.ack();
        }
      }
      assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `o${i + 1}`), label);
      const ci = await worker.info();
      assert.equal(ci.delivered.stream_seq, 10, label);

      const ordered = await js.consumers.get("ORDERS", { filter_subjects: ["orders.>"] });
      const seen = [];
      const it = await ordered.consume();
      for await (const m of it) {
        seen.push(m.seq);
        if (seen.length === 10) break;
      }
      assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => i + 1), label);

      const kvm = new Kvm(nc);
      const kv = await kvm.create("cfg", { history: 5 });
      const r1 = await kv.put("colour", "red");
      const r2 = await kv.update("colour", "blue", r1);
      assert.equal(r2, r1 + 1, label);
      await assert.rejects(kv.update("colour", "green", r1), `${label}: stale revision`);
      assert.equal((await kv.get("colour")).string(), "blue", label);
      await kv.put("size", "L");
      await kv.delete("size");
      const keys = [];
      for await (const k of await kv.keys()) keys.push(k);
      assert.deepEqual(keys.sort(), ["colour"], label);
      const hist = [];
      for await (const e of await kv.history({ key: "colour" })) hist.push(e.string());
      assert.deepEqual(hist, ["red", "blue"], label);
    } finally {
      await nc.close();
      srv.stop();
    }
  });
}
