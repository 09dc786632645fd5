// Server processes for the nats.js tests: one server (startServer) or a
// three-node JetStream cluster (startCluster), of nats-server (the
// reference) or tribune-broker. Binaries from NATS_SERVER_BIN and
// TRIBUNE_BROKER_BIN (the Makefile exports both).
//
// The cluster has the layout of the Rust fixture (broker/tests/common/
// cluster.rs, Cluster::start_js) and the Python one (python/nats_cluster.py):
// node i on 127.0.0.(i+1) with its own client, route and monitoring ports,
// its own store dir and config, every node routed to every node:
//
//   <bin> -c node.conf -js -sd DIR/js -a 127.0.0.X -p CLIENT -m HTTP -n node-x
//         --cluster nats://127.0.0.X:ROUTE --cluster_name tribune-test
//         --routes nats://127.0.0.1:R1,nats://127.0.0.2:R2,nats://127.0.0.3:R3
//
// Ready means /varz answers with a server_id on every node and every node's
// /routez lists every other node (distinct remote_ids: nats-server keeps
// several connections per peer). Waits only guard against hanging.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "../../..");

/** [label, binary] of every server kind the suites run against. */
export const flavors = [
  ["nats-server", process.env.NATS_SERVER_BIN ?? join(root, ".venv/bin/nats-server")],
  ["tribune", process.env.TRIBUNE_BROKER_BIN ?? join(root, "target/debug/tribune-broker")],
];

export const CLUSTER_NAME = "tribune-test";

// JetStream in account APP (the no_auth_user's) and a system account, as in
// the Rust fixture's JS_CLUSTER_CONFIG.
const JS_CLUSTER_CONFIG = `
accounts {
  APP: { jetstream: enabled, users: [ { user: app, password: app } ] }
  SYS: { users: [ { user: sys, password: sys } ] }
}
system_account: SYS
no_auth_user: app
`;

const STARTUP_DEADLINE_MS = 20_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * `n` distinct ports free on `host` right now (held together, then
 * released for the server to take). Another process may take one in
 * between; startCluster retries on fresh ports if a node does not come up.
 */
export async function freePorts(host = "127.0.0.1", n = 1) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      await new Promise((ok, fail) => {
        s.on("error", fail);
        s.listen(0, host, ok);
      });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  }
}

async function waitForPort(port, host = "127.0.0.1") {
  for (let i = 0; i < STARTUP_DEADLINE_MS / 50; i++) {
    const up = await new Promise((ok) => {
      const c = tcpConnect(port, host, () => {
        c.destroy();
        ok(true);
      });
      c.on("error", () => ok(false));
    });
    if (up) return;
    await sleep(50);
  }
  throw new Error(`server did not listen on ${host}:${port}`);
}

/** One server with JetStream on 127.0.0.1 and a free port. */
export async function startServer(bin) {
  assert.ok(existsSync(bin), `${bin} not found (make build / make venv)`);
  const dir = mkdtempSync(join(tmpdir(), "tribune-njs-"));
  const [port] = await freePorts();
  const child = spawn(bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", join(dir, "js")], {
    stdio: "ignore",
  });
  await waitForPort(port);
  return {
    port,
    // The store is removed once the server has exited: it may still write
    // state as it shuts down. Await the promise, or let it finish alone.
    stop() {
      const exited =
        child.exitCode !== null || child.signalCode !== null
          ? Promise.resolve()
          : new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      const guard = setTimeout(() => child.kill("SIGKILL"), 10_000);
      return exited.then(() => {
        clearTimeout(guard);
        rmSync(dir, { recursive: true, force: true });
      });
    },
  };
}

/**
 * One server on 127.0.0.1 with a configuration file: `config({ port,
 * wsPort })` returns its text, given a free client port and a free port
 * for a WebSocket listener. Ready once both ports listen.
 */
export async function startConfigured(bin, config) {
  assert.ok(existsSync(bin), `${bin} not found (make build / make venv)`);
  const dir = mkdtempSync(join(tmpdir(), "tribune-njs-"));
  const [port, wsPort] = await freePorts("127.0.0.1", 2);
  const conf = join(dir, "server.conf");
  writeFileSync(conf, config({ port, wsPort }));
  const logPath = join(dir, "server.log");
  const logFd = openSync(logPath, "w");
  let child;
  try {
    child = spawn(bin, ["-c", conf, "-a", "127.0.0.1", "-p", String(port)], {
      stdio: ["ignore", logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  const log = () => readFileSync(logPath, "utf8");
  try {
    await waitForPort(port);
    await waitForPort(wsPort);
  } catch (e) {
    child.kill("SIGKILL");
    throw new Error(`${e.message}\n${log()}`);
  }
  return {
    port,
    wsPort,
    wsUrl: `ws://127.0.0.1:${wsPort}`,
    log,
    stop() {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** GET a monitoring endpoint as JSON; throws on any failure. */
async function httpJson(ip, port, path) {
  const r = await fetch(`http://${ip}:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function launchNode(bin, dir, routes, node, { jetstream, config }) {
  const conf = join(dir, `${node.name}.conf`);
  writeFileSync(conf, config(node));
  const logFd = openSync(node.logPath, "w");
  const args = [
    "-c", conf,
    ...(jetstream ? ["-js", "-sd", join(dir, `${node.name}-js`)] : []),
    "-a", node.ip, "-p", String(node.port),
    "-m", String(node.httpPort),
    "-n", node.name,
    "--cluster", node.routeUrl,
    "--cluster_name", CLUSTER_NAME,
    "--routes", routes,
  ];
  try {
    return spawn(bin, args, { stdio: ["ignore", logFd, logFd] });
  } finally {
    closeSync(logFd); // the child has its own copy
  }
}

/**
 * Poll `check` (returns a problem string, or null when done) until done;
 * throws the last problem after `deadlineMs`, or at once when a node has
 * exited.
 */
async function pollReady(what, nodes, check, deadlineMs) {
  const end = Date.now() + deadlineMs;
  let problem = "never checked";
  while (Date.now() < end) {
    const gone = nodes.find((n) => !n.running);
    if (gone) throw new Error(`${gone.name} exited before ${what}`);
    try {
      problem = await check();
    } catch (e) {
      problem = String(e);
    }
    if (problem === null) return;
    await sleep(50);
  }
  throw new Error(`no ${what}: ${problem}`);
}

/**
 * Three nodes of `bin` with JetStream, meshed. Returns
 * `{ nodes, live(), nodeNamed(name), kill(node), stop(), diagnostics() }`;
 * each node has `name` (node-a ..), `ip`, `port`, `url`, `httpPort`,
 * `wsPort` (free, for a WebSocket listener the config may open),
 * `serverId` and `running`. kill() is SIGKILL. `jetstream: false` leaves
 * JetStream off; `config(node)` replaces the nodes' configuration text.
 */
export async function startCluster(
  bin,
  size = 3,
  { jetstream = true, config = () => JS_CLUSTER_CONFIG } = {},
) {
  assert.ok(existsSync(bin), `${bin} not found (make build / make venv)`);
  let lastError;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "tribune-njs-cluster-"));
    const nodes = [];
    for (let i = 0; i < size; i++) {
      const ip = `127.0.0.${i + 1}`;
      const [port, routePort, httpPort, wsPort] = await freePorts(ip, 4);
      const name = `node-${String.fromCharCode(97 + i)}`;
      nodes.push({
        name, ip, port, routePort, httpPort, wsPort,
        url: `${ip}:${port}`,
        routeUrl: `nats://${ip}:${routePort}`,
        logPath: join(dir, `${name}.log`),
        serverId: null,
        child: null,
        get running() {
          return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
        },
      });
    }
    const routes = nodes.map((n) => n.routeUrl).join(",");
    const cluster = {
      nodes,
      live: () => nodes.filter((n) => n.running),
      nodeNamed(name) {
        const n = nodes.find((x) => x.name === name);
        assert.ok(n, `${name} is not a node of the cluster`);
        return n;
      },
      kill(node) {
        node.child?.kill("SIGKILL");
      },
      stop() {
        for (const n of nodes) n.child?.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
      },
      diagnostics() {
        return nodes
          .map((n) => {
            let log = "";
            try {
              log = readFileSync(n.logPath, "utf8").split("\n").slice(-30).join("\n");
            } catch {}
            return `--- ${n.name} (${bin}, ${n.running ? "running" : "stopped"}) ---\n${log}`;
          })
          .join("\n");
      },
    };
    for (const n of nodes) n.child = launchNode(bin, dir, routes, n, { jetstream, config });
    try {
      await pollReady(
        "/varz on every node",
        nodes,
        async () => {
          for (const n of nodes) {
            n.serverId = (await httpJson(n.ip, n.httpPort, "/varz")).server_id || null;
            if (!n.serverId) return `${n.name}: no server_id`;
          }
          return null;
        },
        STARTUP_DEADLINE_MS,
      );
      await pollReady(
        "full route mesh",
        nodes,
        async () => {
          for (const n of nodes) {
            const v = await httpJson(n.ip, n.httpPort, "/routez");
            const have = new Set((v.routes ?? []).map((r) => r.remote_id).filter(Boolean));
            const want = nodes.filter((m) => m !== n).map((m) => m.serverId);
            if (have.size !== want.length || !want.every((id) => have.has(id))) {
              return `${n.name} routes to ${[...have]}, want ${want}`;
            }
          }
          return null;
        },
        STARTUP_DEADLINE_MS,
      );
      return cluster;
    } catch (e) {
      lastError = `${e.message}\n${cluster.diagnostics()}`;
      // A node that exited (a port taken in between) is worth another try
      // on fresh ports; a cluster that runs but does not form is not.
      const exited = nodes.some((n) => !n.running);
      cluster.stop();
      if (!exited) break;
    }
  }
  throw new Error(`cluster of ${bin} did not start: ${lastError}`);
}
