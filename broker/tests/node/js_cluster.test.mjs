// nats.js (@nats-io/jetstream) against a three-node JetStream cluster
// (servers.mjs startCluster), once on nats-server (the reference: validates
// the test) and once on tribune-broker: an R3 file stream created with
// jetstreamManager, acked publishes through every node, reads through every
// node (STREAM.MSG.GET and DIRECT.GET), a durable pull consumer (replicas
// inherited) fetched and acked, then the stream leader killed with SIGKILL
// while a publisher goes on; the consumer continues through another node.
//
// Each connection is pinned to its node (no reconnect, cluster updates
// ignored), so a request through node i's client enters the cluster there.
// Deadlines only guard against hanging; nothing asserts a duration.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "@nats-io/transport-node";
import { AckPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";

import { CLUSTER_NAME, flavors, sleep, startCluster } from "./servers.mjs";

const STREAM = "NJS_R3";
const CONSUMER = "worker";
// Leaders, catch-up and failover on a loaded two-core machine: a guard.
const JS_DEADLINE_MS = 90_000;
const REQUEST_MS = 5_000;
// The whole scenario: a guard against hanging, not a budget.
const GUARD_MS = 300_000;

const subjectOf = (k) => `njs.${k % 5}`;
const msgIdOf = (k) => `m${k}`;
const payloadOf = (k) => `update ${k}`;

/** Pinned clients: node name -> { nc, js, jsm }. */
class Clients {
  constructor(cluster) {
    this.cluster = cluster;
    this.byName = new Map();
  }

  async connectAll() {
    for (const n of this.cluster.live()) {
      const nc = await connect({
        servers: n.url,
        name: `js-cluster@${n.name}`,
        reconnect: false,
        ignoreClusterUpdates: true,
        timeout: REQUEST_MS * 2,
      });
      const jsm = await jetstreamManager(nc, { timeout: REQUEST_MS, checkAPI: false });
      this.byName.set(n.name, { nc, jsm, js: jetstream(nc, { timeout: REQUEST_MS }) });
    }
    await this.poll("the JetStream API on every node", async () => {
      for (const { jsm } of this.byName.values()) await jsm.getAccountInfo();
      return true;
    });
    return this;
  }

  names() {
    return [...this.byName.keys()].sort();
  }

  get(name) {
    const c = this.byName.get(name);
    assert.ok(c, `no client for ${name}`);
    return c;
  }

  /** Forget node `name`'s client (its node is being killed). */
  drop(name) {
    const c = this.byName.get(name);
    this.byName.delete(name);
    return c;
  }

  async close() {
    for (const { nc } of this.byName.values()) await nc.close().catch(() => {});
    this.byName.clear();
  }

  /**
   * Await `check()` until it returns something other than null/undefined
   * (returned); an exception means "not yet", except an AssertionError: a
   * wrong answer fails at once. Fails with the last problem and every
   * node's log tail after JS_DEADLINE_MS.
   */
  async poll(what, check) {
    const end = Date.now() + JS_DEADLINE_MS;
    let problem = "never checked";
    for (;;) {
      try {
        const out = await check();
        if (out !== null && out !== undefined) return out;
        problem = "not yet";
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        problem = String(e?.stack ?? e);
      }
      if (Date.now() > end) {
        assert.fail(`gave up waiting for ${what}: ${problem}\n${this.cluster.diagnostics()}`);
      }
      await sleep(200);
    }
  }

  /**
   * The leader of a Raft group (a stream or a consumer) once the
   * `info(jsm)` answer (STREAM.INFO or CONSUMER.INFO) through every
   * connected node has a cluster block of this cluster naming the same
   * leader, that leader is not `notLeader`, the replicas are the cluster's
   * other nodes (dead ones included), and every other live node is a current
   * replica. [leader, Map(node name -> info)].
   */
  async waitLeader(what, info, notLeader = null) {
    const all = this.cluster.nodes.map((n) => n.name);
    return this.poll(`a leader of ${what} other than ${notLeader}`, async () => {
      const infos = new Map();
      const leaders = new Set();
      for (const name of this.names()) {
        const i = await info(this.get(name).jsm);
        if (i.cluster?.name !== CLUSTER_NAME || !i.cluster.leader) return null;
        infos.set(name, i);
        leaders.add(i.cluster.leader);
      }
      if (leaders.size !== 1 || leaders.has(notLeader)) return null;
      const [leader] = leaders;
      const others = all.filter((n) => n !== leader).sort().join();
      for (const i of infos.values()) {
        const replicas = i.cluster.replicas ?? [];
        if (replicas.map((r) => r.name).sort().join() !== others) return null;
        const current = new Set(replicas.filter((r) => r.current).map((r) => r.name));
        for (const n of this.cluster.live()) {
          if (n.name !== leader && !current.has(n.name)) return null;
        }
      }
      return [leader, infos];
    });
  }
}

/** Our cluster, `leader`, and the two other nodes as replicas. */
function assertClusterBlock(info, leader, names, label) {
  const c = info.cluster;
  assert.ok(c, `${label}: no cluster block`);
  assert.equal(c.name, CLUSTER_NAME, label);
  assert.equal(c.leader, leader, label);
  const replicas = (c.replicas ?? []).map((r) => r.name).sort();
  assert.deepEqual(replicas, names.filter((n) => n !== leader).sort(), label);
}

/**
 * Publish message k (Nats-Msg-Id m<k>) until acknowledged, starting at
 * node k % live and moving on after each failure (no responders, a timeout,
 * a closed connection). The id makes a retry of a stored message a
 * duplicate rather than a second copy (short of a failover).
 */
async function publishSure(clients, k, log) {
  const end = Date.now() + JS_DEADLINE_MS;
  for (let attempt = 0; ; attempt++) {
    const names = clients.names();
    const name = names[(k + attempt) % names.length];
    try {
      return await clients.get(name).js.publish(subjectOf(k), payloadOf(k), {
        msgID: msgIdOf(k),
        timeout: REQUEST_MS,
      });
    } catch (e) {
      log.failures = (log.failures ?? 0) + 1;
      log.samples ??= new Set();
      if (log.samples.size < 4) log.samples.add(`${name}: ${e?.message ?? e}`);
      if (Date.now() > end) {
        assert.fail(`message ${k} never acknowledged: ${e}\n${clients.cluster.diagnostics()}`);
      }
    }
    await sleep(100);
  }
}

/**
 * Messages first..first+n-1 in turn through every node, numbered in order.
 * [Map(seq -> k), failed attempts] (a retry across a leader change, which a
 * loaded machine can cause, may store a message twice).
 */
async function publishEveryNode(clients, first, n, label) {
  const out = new Map();
  const log = {};
  let last = 0;
  for (let k = first; k < first + n; k++) {
    const pa = await publishSure(clients, k, log);
    assert.equal(pa.stream, STREAM, label);
    assert.ok(pa.seq > last, `${label}: message ${k} acked at ${pa.seq} after ${last}`);
    last = pa.seq;
    out.set(pa.seq, k);
  }
  return [out, log.failures ?? 0];
}

/**
 * Every node in `names` serves every seq of `want` (seq -> k) through
 * STREAM.MSG.GET (the leader answers) and DIRECT.GET (a replica answers),
 * with subject, payload and message id. Polls: a follower may lag.
 */
async function checkReadBack(clients, names, want, label) {
  for (const name of names) {
    const { jsm } = clients.get(name);
    const pending = new Map(want);
    await clients.poll(`${name} to serve ${want.size} messages`, async () => {
      for (const [seq, k] of [...pending]) {
        for (const [how, sm] of [
          ["MSG.GET", await jsm.streams.getMessage(STREAM, { seq })],
          ["DIRECT.GET", await jsm.direct.getMessage(STREAM, { seq })],
        ]) {
          if (!sm) throw new Error(`${name} ${how} seq ${seq}: not found (yet)`);
          assert.deepEqual(
            [sm.seq, sm.subject, sm.string(), sm.header?.get("Nats-Msg-Id")],
            [seq, subjectOf(k), payloadOf(k), msgIdOf(k)],
            `${label} ${name} ${how}`,
          );
        }
        pending.delete(seq);
      }
      return true;
    });
  }
}

/**
 * One fetch of up to `batch` from the durable through `js`, each message
 * acked with ackAck (the consumer leader confirms). [[seq, subject,
 * payload]] of the confirmed ones; failures (no consumer leader yet, a lost
 * ack) yield what came before. (nats.js takes a message that shows the
 * fetch inbox as its subject for a status message: a delivery that crossed
 * a route must show the subject it was published on.)
 */
async function fetchAndAck(js, batch) {
  const out = [];
  try {
    const consumer = await js.consumers.get(STREAM, CONSUMER);
    const msgs = await consumer.fetch({ max_messages: batch, expires: 2_000 });
    for await (const m of msgs) {
      try {
        if (await m.ackAck({ timeout: REQUEST_MS })) out.push([m.seq, m.subject, m.string()]);
      } catch {
        // redelivered after ack_wait
      }
    }
  } catch {
    // no consumer leader yet, or the fetch failed: the caller polls again
  }
  return out;
}

async function createStream(clients, via, label) {
  const si = await clients.get(via).jsm.streams.add({
    name: STREAM,
    subjects: ["njs.>"],
    storage: StorageType.File,
    num_replicas: 3,
    allow_direct: true,
  });
  assert.equal(si.config.num_replicas, 3, label);
  assert.equal(si.config.storage, StorageType.File, label);
  return clients.waitLeader(STREAM, (jsm) => jsm.streams.info(STREAM));
}

for (const [label, bin] of flavors) {
  const name = `nats.js R3 stream and consumer across a stream leader kill against ${label}`;
  test(name, { timeout: GUARD_MS }, async () => {
    const cluster = await startCluster(bin);
    const clients = new Clients(cluster);
    const dead = [];
    try {
      await clients.connectAll();
      const names = clients.names();

      // An R3 stream: every node names the leader and two replicas.
      const [createdLeader, infos] = await createStream(clients, "node-a", label);
      let leader = createdLeader;
      assert.deepEqual([...infos.keys()].sort(), names, label);
      for (const [name, si] of infos) {
        assert.equal(si.config.num_replicas, 3, `${label} via ${name}`);
        assertClusterBlock(si, leader, names, `${label} STREAM.INFO via ${name}`);
      }

      // Acked publishes through every node, read back through every node.
      const [acked, failures] = await publishEveryNode(clients, 0, 30, label);
      if (failures === 0) {
        // No retry, so nothing stored twice: 1..30.
        assert.deepEqual([...acked.keys()], Array.from({ length: 30 }, (_, i) => i + 1), label);
      }
      await checkReadBack(clients, names, acked, label);

      // A durable pull consumer: three replicas, inherited.
      const ci = await clients.get("node-a").jsm.consumers.add(STREAM, {
        durable_name: CONSUMER,
        ack_policy: AckPolicy.Explicit,
        ack_wait: 5_000_000_000, // 5 s in ns: what a dying leader handed out comes back soon
      });
      console.log(`${label}: consumer config.num_replicas ${ci.config.num_replicas}`);
      const [cLeader, cInfos] = await clients.waitLeader(CONSUMER, (jsm) => jsm.consumers.info(STREAM, CONSUMER));
      for (const [name, ci] of cInfos) assertClusterBlock(ci, cLeader, names, `${label} CONSUMER.INFO via ${name}`);

      // Half of it fetched and acked through a node that is not the stream leader.
      const first = names.find((n) => n !== leader);
      const consumed = new Map();
      await clients.poll("15 messages fetched and acked", async () => {
        for (const [seq, subject, data] of await fetchAndAck(clients.get(first).js, 15 - consumed.size)) {
          if (acked.has(seq)) {
            // (else a second copy of a retried message)
            const k = acked.get(seq);
            assert.deepEqual([subject, data], [subjectOf(k), payloadOf(k)], `${label} seq ${seq}`);
          }
          consumed.set(seq, data);
        }
        return consumed.size >= 15 ? true : null;
      });
      assert.deepEqual([...consumed.keys()].sort((a, b) => a - b), Array.from({ length: 15 }, (_, i) => i + 1), label);
      await clients.poll("the consumer to count 15 acks", async () => {
        const ci = await clients.get(first).jsm.consumers.info(STREAM, CONSUMER);
        return ci.num_ack_pending === 0 && ci.ack_floor.stream_seq === 15 ? true : null;
      });

      // A publisher across the kill of the stream leader.
      const log = {};
      const acks = []; // [k, seq, duplicate]
      let stop = false;
      const publisher = (async () => {
        for (let k = 30; !stop; k++) {
          const pa = await publishSure(clients, k, log);
          acks.push([k, pa.seq, Boolean(pa.duplicate)]);
          await sleep(20); // keeps the stream, and its read-back, small
        }
      })();
      publisher.catch(() => {}); // handled: awaited below
      const waitAcks = (n, what) => clients.poll(what, async () => (acks.length >= n ? true : null));
      try {
        await waitAcks(10, "10 acks before the kill");
        leader = (await clients.get(first).jsm.streams.info(STREAM)).cluster.leader;
        dead.push(clients.drop(leader));
        cluster.kill(cluster.nodeNamed(leader));
        console.log(`${label}: killed ${leader} after ${acks.length} background acks`);
        await waitAcks(acks.length + 30, "30 acks after the kill");
      } finally {
        stop = true;
        await publisher;
      }
      const dups = acks.filter(([, , d]) => d).length;
      console.log(
        `${label}: ${acks.length} acked (${dups} duplicates), ${log.failures ?? 0} failed attempts, e.g.`,
        [...(log.samples ?? [])],
      );
      for (let i = 1; i < acks.length; i++) {
        const [[k0, s0], [k1, s1]] = [acks[i - 1], acks[i]];
        assert.ok(k1 === k0 + 1 && s1 > s0, `${label}: acks in publish order: ${[k0, s0]} ${[k1, s1]}`);
      }
      assert.ok(acks[0][1] > Math.max(...acked.keys()), label);
      for (const [k, seq] of acks) acked.set(seq, k);

      // A new leader; the two other nodes (one of them dead) still replicas.
      const [newLeader, after] = await clients.waitLeader(STREAM, (jsm) => jsm.streams.info(STREAM), leader);
      assert.notEqual(newLeader, leader, label);
      for (const [name, si] of after) {
        assert.equal(si.config.num_replicas, 3, label);
        assertClusterBlock(si, newLeader, names, `${label} STREAM.INFO via ${name} after the kill`);
      }
      console.log(`${label}: new leader ${newLeader}, replicas`, [...after.values()][0].cluster.replicas);

      // The consumer goes on through the other survivor: every message not
      // acked before is delivered (acked ones may come again).
      const rest = clients.names().find((n) => n !== first);
      const { js: jsRest, jsm: jsmRest } = clients.get(rest);
      const unacked = [...acked.keys()].filter((s) => !consumed.has(s));
      const delivered = new Map();
      let again = 0;
      await clients.poll(`the ${unacked.length} unacked messages via ${rest}`, async () => {
        for (const [seq, subject, data] of await fetchAndAck(jsRest, 20)) {
          if (acked.has(seq)) {
            const k = acked.get(seq);
            assert.deepEqual([subject, data], [subjectOf(k), payloadOf(k)], `${label} seq ${seq}`);
          }
          if (consumed.has(seq) || delivered.has(seq)) again++;
          delivered.set(seq, data);
        }
        return unacked.every((s) => delivered.has(s)) ? true : null;
      });
      console.log(`${label}: via ${rest} ${delivered.size} delivered, ${again} again`);

      // Nothing acknowledged is lost: no holes, every ack at its sequence on
      // both survivors, and the consumer has nothing left.
      const lastAcked = Math.max(...acked.keys());
      const state = await clients.poll("the stream to hold every ack", async () => {
        const s = (await jsmRest.streams.info(STREAM)).state;
        return s.last_seq >= lastAcked && s.messages === s.last_seq && s.first_seq === 1 ? s : null;
      });
      const done = await clients.poll("the consumer to have nothing left", async () => {
        const ci = await jsmRest.consumers.info(STREAM, CONSUMER);
        if (ci.num_ack_pending === 0 && ci.ack_floor.stream_seq >= lastAcked) return ci;
        // Stored copies never acked to the publisher, redeliveries of lost acks.
        await fetchAndAck(jsRest, 20);
        return null;
      });
      assert.equal(done.num_pending, 0, label);
      await checkReadBack(clients, clients.names(), acked, label);
      const ids = [];
      for (let seq = 1; seq <= state.last_seq; seq++) {
        ids.push((await jsmRest.streams.getMessage(STREAM, { seq }))?.header?.get("Nats-Msg-Id"));
      }
      // A retry may reach a new leader before it has applied the original
      // (Raft allows it): reported, not asserted.
      console.log(
        `${label}: last_seq ${state.last_seq}, ${acked.size} acked, ${ids.length - new Set(ids).size} stored twice`,
      );
    } finally {
      await clients.close();
      for (const c of dead) await c?.nc.close().catch(() => {});
      cluster.stop();
    }
  });
}
