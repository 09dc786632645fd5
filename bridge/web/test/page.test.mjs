// The live-scores page in headless Chromium against the whole local system,
// started exactly as `make run` starts it (bridge/run/run-local.sh: three
// nodes with WebSocket listeners, tribune-auth, the simulator, three bridges,
// the page server), once on tribune-broker and once on nats-server.
//
// It signs in with the development token, sees the scores of the sports the
// token grants (and no other), sees the current state at once with the feed
// paused, sees the next update arrive, sees a forged and an expired token
// refused with a visible message, and keeps updating after the active bridge
// and then the node the page is connected to are killed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
// A debug build of three brokers, the bridge and tribune-auth on a loaded CI
// machine: generous, and every wait says what it waited for.
const START_TIMEOUT_MS = 240_000;
const WAIT_MS = 60_000;

/** run-local.sh in "wait" mode in a state dir of its own; resolves when ready. */
async function startSystem(server, portOffset) {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), `tribune-page-${server}-`));
  const child = spawn("bash", [path.join(ROOT, "bridge/run/run-local.sh")], {
    env: {
      ...process.env,
      RUN_SERVER: server,
      RUN_PORT_OFFSET: String(portOffset),
      RUN_STATE_DIR: state,
      RUN_FOREGROUND: "wait",
      RUN_RATE: "20",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`run-local.sh not ready in ${START_TIMEOUT_MS} ms:\n${out}`)), START_TIMEOUT_MS);
    child.stdout.on("data", () => {
      if (out.includes("run-local: ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`run-local.sh exited (${code}) before ready:\n${out}`));
    });
  });
  const sys = {
    state,
    output: () => out,
    url: () => fs.readFileSync(path.join(state, "page.url"), "utf8").trim(),
    pid(name) {
      const line = fs.readFileSync(path.join(state, "pids"), "utf8").split("\n").find((l) => l.startsWith(`${name} `));
      assert.ok(line, `no pid for ${name}`);
      return Number(line.split(" ")[1]);
    },
    log: (name) => fs.readFileSync(path.join(state, "logs", `${name}.log`), "utf8"),
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
  try {
    await ready;
  } catch (err) {
    await sys.stop();
    throw err;
  }
  return sys;
}

/** An HS256 web token as tribune-auth's dev config accepts, with any claims. */
function mint(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** run-local's three bridges' /metrics ports (one ingests, two stand by). */
const BRIDGE_PORTS = [9465, 9468, 9469];

/** A number from the bridges' /metrics, summed (a standby counts nothing). */
async function bridgeMetric(portOffset, name) {
  let sum = 0;
  for (const port of BRIDGE_PORTS) {
    const text = await (await fetch(`http://127.0.0.1:${port + portOffset}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    sum += Number(line?.split(" ")[1] ?? NaN);
  }
  return sum;
}

/**
 * With the simulator stopped: wait until the bridges have nothing in flight and
 * have published nothing for two seconds, so every stored state has also been
 * delivered to the live subscribers.
 */
async function feedQuiet(portOffset) {
  const deadline = Date.now() + WAIT_MS;
  let last = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    const published = await bridgeMetric(portOffset, "tribune_bridge_updates_published_total");
    const inflight = await bridgeMetric(portOffset, "tribune_bridge_inflight");
    if (published !== last || inflight !== 0) {
      last = published;
      since = Date.now();
    } else if (Date.now() - since >= 2000) {
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("the bridge did not go quiet with the feed paused");
}

/** What the board shows: match key -> {rev, home, away}. */
async function board(page) {
  return page.$$eval(".match", (cards) =>
    Object.fromEntries(
      cards.map((c) => [
        `${c.dataset.sport}/${c.dataset.matchId}`,
        { rev: Number(c.dataset.rev), home: c.querySelector(".score-home").textContent, away: c.querySelector(".score-away").textContent },
      ]),
    ),
  );
}

/** Resolves when some card's rev grows past what `before` shows. */
async function nextUpdate(page, before, what) {
  await page.waitForFunction(
    (prev) =>
      [...document.querySelectorAll(".match")].some((c) => {
        const key = `${c.dataset.sport}/${c.dataset.matchId}`;
        return prev[key] === undefined || Number(c.dataset.rev) > prev[key].rev;
      }),
    before,
    { timeout: WAIT_MS },
  ).catch((e) => {
    throw new Error(`${what}: no update reached the page: ${e.message}`);
  });
}

async function live(page, what) {
  await page.waitForSelector("#conn[data-state=live]", { timeout: WAIT_MS }).catch(async (e) => {
    const conn = await page.textContent("#conn");
    const err = await page.textContent("#error");
    throw new Error(`${what}: page not live (conn ${JSON.stringify(conn)}, error ${JSON.stringify(err)}): ${e.message}`);
  });
}

async function scenario(t, server, portOffset) {
  const sys = await startSystem(server, portOffset);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const logs = [];
  // A failing step shows the page's console and the system's output with it.
  const step = (name, fn) =>
    t.test(name, async () => {
      try {
        await fn();
      } catch (err) {
        err.message += `\n--- page console:\n${logs.join("\n")}\n--- run-local:\n${sys.output()}`;
        throw err;
      }
    });
  try {
    const url = sys.url();
    const base = url.slice(0, url.indexOf("#"));
    const page = await browser.newPage();
    page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));

    await step("signs in and shows the granted sports' scores", async () => {
      await page.goto(url);
      await live(page, "sign-in");
      assert.ok(!page.url().includes("token="), "the token is removed from the address bar");
      await page.waitForSelector("body[data-snapshot=loaded]", { timeout: WAIT_MS });
      await page.waitForSelector("section[data-sport=football] .match", { timeout: WAIT_MS });
      await page.waitForSelector("section[data-sport=tennis] .match", { timeout: WAIT_MS });
      const sports = await page.$$eval("section", (s) => s.map((x) => x.dataset.sport));
      assert.deepEqual(sports, ["football", "tennis"], "only the sports the token grants");
      assert.equal(await page.$$eval(".match[data-sport=basketball]", (c) => c.length), 0);
      // A match not yet started shows "–"; some match in play shows digits.
      await page.waitForFunction(
        () => [...document.querySelectorAll(".match .score-home")].some((e) => /^\d+$/.test(e.textContent)),
        null,
        { timeout: WAIT_MS },
      ).catch((e) => {
        throw new Error(`no match shows a score: ${e.message}`);
      });
    });

    await step("a page opened later shows every match at once, then the next update", async () => {
      // Pause the feed: nothing new can arrive, so what a new page shows
      // comes from the stream (the last message per match), not from updates.
      const sim = sys.pid("simulator");
      process.kill(sim, "SIGSTOP");
      let paused = true;
      try {
        await page.waitForSelector("body[data-snapshot=settled]", { timeout: WAIT_MS });
        await feedQuiet(portOffset);
        const first = await board(page);
        const late = await browser.newPage();
        await late.goto(url.replace(/#.*/, `#token=${fs.readFileSync(path.join(sys.state, "keys/web.token"), "utf8").trim()}`));
        await live(late, "late page");
        await late.waitForSelector("body[data-snapshot=settled]", { timeout: WAIT_MS });
        const now = await board(page);
        assert.deepEqual(now, first, "nothing changed while the feed was paused");
        assert.deepEqual(await board(late), now, "the late page shows exactly what the first one shows");
        assert.ok(Object.keys(now).length >= 2, "matches are shown");
        process.kill(sim, "SIGCONT");
        paused = false;
        await nextUpdate(late, now, "after the feed resumed");
        await late.close();
      } finally {
        if (paused) process.kill(sim, "SIGCONT");
      }
    });

    const secret = fs.readFileSync(path.join(sys.state, "keys/hs256.secret"), "utf8").trim();
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: "tribune-local-dev", aud: "tribune-web", sub: "page-test", sports: ["football"] };
    for (const [name, token] of [
      ["a forged token", mint("0".repeat(64), { ...claims, exp: now + 600 })],
      ["an expired token", mint(secret, { ...claims, iat: now - 7200, exp: now - 3600 })],
    ]) {
      await step(`${name} is refused with a visible message`, async () => {
        const p = await browser.newPage();
        await p.goto(`${base}#token=${token}`);
        await p.waitForSelector("#error:not([hidden])", { timeout: WAIT_MS });
        assert.match(await p.textContent("#error"), /refused|not valid|expired/i);
        assert.equal(await p.getAttribute("#conn", "data-state"), "refused");
        assert.equal(await p.$$eval(".match", (c) => c.length), 0, "no scores without sign-in");
        assert.ok(await p.isVisible("#signin"), "the sign-in form is offered again");
        await p.close();
      });
    }

    await step("keeps updating after the active bridge is killed", async () => {
      const roles = await Promise.all(BRIDGE_PORTS.map(async (port) =>
        (await (await fetch(`http://127.0.0.1:${port + portOffset}/healthz`)).json()).role));
      const active = roles.indexOf("active");
      assert.equal(roles.filter((r) => r === "active").length, 1, `one active bridge: ${roles}`);
      process.kill(sys.pid(`bridge${active + 1}`), "SIGKILL");
      await nextUpdate(page, await board(page), "after the active bridge was killed (a standby takes the lease)");
    });

    await step("keeps working after the node it is connected to is killed", async () => {
      const conn = await page.textContent("#conn");
      const port = Number(/:(\d+)\s*$/.exec(conn)?.[1]);
      const node = port - 8081 - portOffset + 1;
      assert.ok(node >= 1 && node <= 3, `connected to a WebSocket port of a node: ${conn}`);
      process.kill(sys.pid(`node${node}`), "SIGKILL");
      await page.waitForFunction((old) => {
        const c = document.getElementById("conn");
        return c.dataset.state === "live" && c.textContent !== old;
      }, conn, { timeout: WAIT_MS }).catch((e) => {
        throw new Error(`no reconnect to another node after killing node${node}: ${e.message}`);
      });
      await nextUpdate(page, await board(page), "after the node was killed");
      await page.screenshot({ path: path.join(ROOT, "target", `page-${server}.png`), fullPage: true });
    });
  } finally {
    await browser.close();
    await sys.stop();
    if (!process.env.KEEP_STATE) fs.rmSync(sys.state, { recursive: true, force: true });
  }
}

test("live-scores page on tribune-broker", { timeout: 600_000 }, (t) => scenario(t, "tribune", 21000));
test("live-scores page on nats-server", { timeout: 600_000 }, (t) => scenario(t, "nats", 22000));
