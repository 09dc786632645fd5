// The live-scores page: sign in with a token, connect to the cluster over
// WebSocket, show every match's current state at once, then every update.
//
// The page is static: `config.json` next to it says where the brokers are
// (written by `make run`, or by whoever deploys the page). The token comes
// from the sign-in form or, once, from the URL fragment (`#token=…`, which
// never reaches a server) and is kept in memory only.

import nats from "./vendor/nats-core.js";
import { Board } from "./view.js";
import { Matches, latest } from "./feed.js";
import { claims, inboxId, listClaim } from "./token.js";

const { wsconnect, createInbox } = nats;

const $ = (id) => document.getElementById(id);
/** When the second read after (re)connecting runs; see `Session.start`. */
const SETTLE_MS = 3000;
const board = new Board($("board"));
// Football minutes tick between updates (from the half's kick-off time).
board.startClock();
let session = null;

function setConn(state, text) {
  const c = $("conn");
  c.dataset.state = state;
  c.textContent = text;
}

function showError(text) {
  const e = $("error");
  e.textContent = text;
  e.hidden = !text;
}

/** A refusal the user can act on, in words; the server's reason is kept. */
function explain(err) {
  const msg = String(err?.message ?? err);
  if (/authorization violation|authentication/i.test(msg)) {
    return `Sign-in refused: the token is not valid or has expired (${msg}).`;
  }
  if (/expired/i.test(msg)) return `Signed out: the token has expired (${msg}).`;
  return `Cannot connect: ${msg}`;
}

async function loadConfig() {
  const r = await fetch("config.json", { cache: "no-store" });
  if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`);
  const c = await r.json();
  if (!Array.isArray(c.servers) || c.servers.length === 0) throw new Error("config.json: no servers");
  return {
    servers: c.servers,
    stream: c.stream ?? "SPORTS",
    prefix: c.subject_prefix ?? "sports",
    sportsClaim: c.sports_claim ?? "sports",
    sports: c.sports ?? [],
    userInboxes: c.user_inboxes ?? true,
  };
}

/** One signed-in connection and what it shows. */
class Session {
  constructor(cfg, token) {
    this.cfg = cfg;
    this.token = token;
    this.matches = new Matches();
    this.nc = null;
    this.closedByUser = false;
  }

  async start() {
    const c = claims(this.token);
    if (!c) throw new Error("this is not a token (expected a JWT)");
    const granted = listClaim(c, this.cfg.sportsClaim);
    this.sports = granted.length ? granted : this.cfg.sports;
    const id = this.cfg.userInboxes ? await inboxId(c) : null;
    this.inboxPrefix = id ? `_INBOX.${id}` : undefined;
    $("who").textContent = `signed in as ${c.sub ?? "?"} · ${this.sports.join(", ")}`;

    setConn("connecting", "connecting…");
    this.nc = await wsconnect({
      servers: this.cfg.servers,
      token: this.token,
      name: "tribune-live-scores",
      inboxPrefix: this.inboxPrefix,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      pingInterval: 15_000,
    });
    board.setSports(this.sports);
    delete document.body.dataset.snapshot;
    // Live first, then the snapshot: an update published in between arrives
    // by both ways, and the per-match rev keeps the newest.
    for (const sport of this.sports) {
      const sub = this.nc.subscribe(`${this.cfg.prefix}.${sport}.*`);
      this.follow(sub);
    }
    setConn("live", `live · ${this.nc.getServer()}`);
    this.watchStatus();
    this.nc.closed().then((err) => this.onClosed(err));
    // The server has our subscriptions before we read.
    await this.nc.flush();
    await this.refresh("loaded");
    // A subscription reaches the other nodes a moment after our own, and a
    // replica may answer the read a moment behind the leader: an update in
    // that gap would be missed by both ways. One more read closes it.
    setTimeout(() => this.refresh("settled"), SETTLE_MS);
  }

  /**
   * Read the current states, retrying a few times: right after a node fails
   * the stream may be between leaders for a moment. Live updates keep
   * arriving meanwhile; a failure is shown, not fatal.
   */
  async refresh(mark) {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.snapshot();
        showError("");
        // For tests and tools: the current states are on the board.
        if (mark) document.body.dataset.snapshot = mark;
        return;
      } catch (err) {
        if (this.closedByUser || this.nc.isClosed()) return;
        if (attempt >= 5) {
          showError(`Could not load the current scores (${err.message}); showing updates as they arrive.`);
          return;
        }
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
    }
  }

  async follow(sub) {
    for await (const m of sub) this.apply(m.data, true);
  }

  apply(data, flash) {
    const s = this.matches.accept(data);
    if (s) board.show(s, { flash });
  }

  /** The current state of every match the user may see. */
  async snapshot() {
    for (const sport of this.sports) {
      const filter = `${this.cfg.prefix}.${sport}.*`;
      const msgs = await latest(this.nc, createInbox, {
        stream: this.cfg.stream,
        filter,
        inboxPrefix: this.inboxPrefix,
      });
      for (const data of msgs) this.apply(data, false);
    }
  }

  async watchStatus() {
    for await (const s of this.nc.status()) {
      switch (s.type) {
        case "disconnect":
          setConn("reconnecting", "reconnecting to another node…");
          break;
        case "reconnect":
          setConn("live", `live · ${this.nc.getServer()}`);
          // A refusal on the way (a node that had just lost its auth
          // service) is over once we are back.
          showError("");
          // Updates published while away: read the current states again
          // (and once more when the new subscriptions have spread).
          this.refresh().then(() => setTimeout(() => this.refresh(), SETTLE_MS));
          break;
        case "error":
          if (s.error) showError(explain(s.error));
          break;
        default:
          break;
      }
    }
  }

  onClosed(err) {
    if (this.closedByUser) return;
    setConn("closed", "disconnected");
    showError(err ? explain(err) : "Disconnected.");
    $("signin").hidden = false;
  }

  async stop() {
    this.closedByUser = true;
    await this.nc?.close();
  }
}

async function signIn(cfg, token) {
  showError("");
  $("signin").hidden = true;
  await session?.stop();
  session = new Session(cfg, token);
  try {
    await session.start();
    $("signout").hidden = false;
  } catch (err) {
    session = null;
    setConn("refused", "not connected");
    showError(explain(err));
    $("signin").hidden = false;
  }
}

async function main() {
  let cfg;
  try {
    cfg = await loadConfig();
  } catch (err) {
    showError(`The page is not configured: ${err.message}`);
    return;
  }
  $("signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    $("token").value = "";
    if (t) signIn(cfg, t);
  });
  $("signout").addEventListener("click", async () => {
    await session?.stop();
    session = null;
    board.setSports([]);
    $("signout").hidden = true;
    $("who").textContent = "";
    setConn("signed-out", "signed out");
    $("signin").hidden = false;
  });
  // A token handed over in the fragment is used once and removed from the
  // address bar (and so from history and bookmarks).
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    history.replaceState(null, "", location.pathname + location.search);
    await signIn(cfg, fromUrl);
  } else {
    $("signin").hidden = false;
  }
}

main();
