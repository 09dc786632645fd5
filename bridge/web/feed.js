// Reading match states from NATS: the current state of every match from the
// stream (one batch direct get, `multi_last`, nats-server 2.11+), then each
// update as it is published. Each message is a whole match state with a
// per-match `rev`; `Matches` keeps the highest, so the snapshot and the live
// subscription can overlap in any order.

export const SCHEMA = "tribune.sports.match.v2";

/** Newest state per match. */
export class Matches {
  constructor() {
    this.revs = new Map();
  }

  /** Parse one message; the state if it is newer than what we hold, else null. */
  accept(data) {
    let s;
    try {
      s = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return null;
    }
    if (s?.schema !== SCHEMA || typeof s.match_id !== "string" || typeof s.sport !== "string") return null;
    const key = `${s.sport}/${s.match_id}`;
    const rev = Number.isSafeInteger(s.rev) ? s.rev : 0;
    if ((this.revs.get(key) ?? -1) >= rev) return null;
    this.revs.set(key, rev);
    return s;
  }
}

/** Status of a message: 0 for data, else the header's code (204 EOB, 404, 408…). */
function statusOf(m) {
  return m.headers?.code ?? 0;
}

/**
 * The last message of every subject matching `filter` in `stream`: a batch
 * direct get answered by the stream's servers, ended by a `204 EOB` status (or
 * `404` when no subject matches). Rejects on another status or after
 * `timeoutMs` without the end.
 */
export async function latest(nc, createInbox, { stream, filter, inboxPrefix, timeoutMs = 5000, batch = 1000 }) {
  const inbox = createInbox(inboxPrefix);
  const sub = nc.subscribe(inbox, { timeout: timeoutMs });
  const body = JSON.stringify({ multi_last: [filter], batch });
  nc.publish(`$JS.API.DIRECT.GET.${stream}`, body, { reply: inbox });
  const out = [];
  try {
    for await (const m of sub) {
      const code = statusOf(m);
      if (code === 0) {
        out.push(m.data);
        continue;
      }
      if (code === 204 || code === 404) break;
      throw new Error(`direct get ${filter}: ${code} ${m.headers?.description ?? ""}`.trim());
    }
  } finally {
    sub.unsubscribe();
  }
  return out;
}
