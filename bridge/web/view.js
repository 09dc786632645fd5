// Rendering of match states (the bridge's `tribune.sports.match.v2`
// messages, see bridge/README.md) into the board. Pure formatting helpers are
// exported for the unit tests; DOM code never uses innerHTML with feed data.

/**
 * Provider status codes per sport (bridge/PROVIDER_FORMAT.md §5); anything
 * else shows as "status N".
 */
const STATUS = {
  football: {
    0: "Abnormal", 1: "Not started", 2: "1st half", 3: "Half-time", 4: "2nd half", 5: "Extra time", 6: "Extra time",
    7: "Penalties", 8: "Full time", 9: "Delayed", 10: "Interrupted", 11: "Abandoned", 12: "Cancelled", 13: "To be decided",
  },
  basketball: {
    0: "Abnormal", 1: "Not started", 2: "Q1", 3: "End of Q1", 4: "Q2", 5: "Half-time", 6: "Q3", 7: "End of Q3", 8: "Q4",
    9: "Overtime", 10: "Ended", 11: "Interrupted", 12: "Cancelled", 13: "Postponed", 14: "Abandoned", 15: "To be decided",
  },
  tennis: {
    0: "Abnormal", 1: "Not started", 3: "In play", 51: "Set 1", 52: "Set 2", 53: "Set 3", 54: "Set 4", 55: "Set 5",
    100: "Ended", 20: "Walkover", 21: "Retired", 22: "Walkover (home)", 23: "Walkover (away)", 24: "Retired (home)",
    25: "Retired (away)", 26: "Defaulted (home)", 27: "Defaulted (away)", 14: "Postponed", 15: "Delayed", 16: "Cancelled",
    17: "Interrupted", 18: "Suspended", 19: "Abandoned", 99: "To be decided",
  },
};

/** Status ids during which the match is being played (shown as live). */
const IN_PLAY = {
  football: [2, 4, 5, 6, 7],
  basketball: [2, 4, 6, 8, 9],
  tennis: [3, 51, 52, 53, 54, 55],
};

export function statusText(sport, statusId) {
  if (statusId === undefined || statusId === null) return "";
  return STATUS[sport]?.[statusId] ?? `status ${statusId}`;
}

export function inPlay(sport, statusId) {
  return (IN_PLAY[sport] ?? []).includes(statusId);
}

/**
 * Football's minute at `nowMs` from the clock the bridge derived: while a
 * half runs (`running`) it keeps ticking from the half's kick-off time with
 * the provider's formula, (t − kickoff_ts) / 60 + 1 + offset, capped at the
 * half's end with the rest as stoppage ("45+2'"); otherwise the minute the
 * clock had at the update, if any.
 */
function footballMinute(clock, nowMs) {
  let minute = clock.minute;
  let stoppage = clock.stoppage ?? 0;
  if (clock.running && Number.isInteger(clock.kickoff_ts) && Number.isInteger(clock.offset)) {
    const elapsed = Math.max(0, Math.floor(nowMs / 1000) - clock.kickoff_ts);
    const raw = Math.floor(elapsed / 60) + 1 + clock.offset;
    const end = clock.offset + 45;
    minute = Math.min(raw, end);
    stoppage = Math.max(0, raw - end);
  }
  if (!Number.isInteger(minute)) return "";
  return stoppage > 0 ? `${minute}+${stoppage}'` : `${minute}'`;
}

/**
 * The match clock to show at `nowMs` (the bridge's `clock`, see
 * bridge/README.md): football "67'" / "45+2'", ticking between updates;
 * basketball the quarter's time left "7:11"; tennis the game in the set,
 * "Game 6" (the server is marked at the names, see `servingSide`).
 * "" when the state has no clock (not started, a break, ended).
 */
export function minuteText(state, nowMs = Date.now()) {
  const clock = state.clock;
  if (!clock || typeof clock !== "object") return "";
  if (state.sport === "football") return footballMinute(clock, nowMs);
  if (state.sport === "basketball") {
    const s = clock.remaining_s;
    if (!Number.isInteger(s) || s < 0) return "";
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  if (state.sport === "tennis") return Number.isInteger(clock.game) ? `Game ${clock.game}` : "";
  return "";
}

/** Tennis: the side serving (1 home, 2 away), from the clock; else null. */
export function servingSide(state) {
  const s = state.sport === "tennis" ? state.clock?.serving : null;
  return s === 1 || s === 2 ? s : null;
}

/** Whether the shown clock changes with time alone (a football half running). */
export function ticking(state) {
  return state.sport === "football" && state.clock?.running === true;
}

const pair = (h, a) => `${h ?? 0}–${a ?? 0}`;

/** Secondary score line: football half-time and shoot-out, quarters, sets. */
export function detailText(sport, score) {
  const h = score?.home?.detail ?? [];
  const a = score?.away?.detail ?? [];
  if (sport === "football") {
    const parts = [];
    if (h.length > 1 && a.length > 1) parts.push(`HT ${pair(h[1], a[1])}`);
    const ph = score?.home?.penalties;
    const pa = score?.away?.penalties;
    if (Number.isInteger(ph) || Number.isInteger(pa)) parts.push(`Pens ${pair(ph, pa)}`);
    return parts.join("  ");
  }
  if (sport === "basketball") {
    const quarters = h.slice(0, 4).map((v, i) => `Q${i + 1} ${pair(v, a[i])}`);
    if (h[4] || a[4]) quarters.push(`OT ${pair(h[4], a[4])}`);
    return quarters.join("  ");
  }
  if (sport === "tennis") {
    const th = score?.home?.tiebreaks ?? [];
    const ta = score?.away?.tiebreaks ?? [];
    return h
      .map((games, i) => {
        const set = pair(games, a[i]);
        return Number.isInteger(th[i]) || Number.isInteger(ta[i]) ? `${set} (${pair(th[i], ta[i])})` : set;
      })
      .join("  ");
  }
  return "";
}

/** The newest text-live line or incident, for the card's last line. */
export function lastEventText(state) {
  const t = state.tlive?.at(-1);
  if (!t?.data) return "";
  // The provider's lines often start with the minute already ("55' - Corner").
  const minute = parseInt(t.time, 10);
  if (!t.time || (Number.isInteger(minute) && parseInt(t.data, 10) === minute)) return t.data;
  return `${t.time} ${t.data}`;
}

/** Team labels: names when the feed carries them, else Home / Away. */
export function teamNames(state) {
  const x = state.extra ?? {};
  const name = (v) => (typeof v === "string" && v.trim() ? v.trim() : null);
  return [name(x.home_team) ?? name(x.home_name) ?? "Home", name(x.away_team) ?? name(x.away_name) ?? "Away"];
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The board: one section per sport, one card per match, updated in place. */
export class Board {
  constructor(root) {
    this.root = root;
    this.sections = new Map();
    this.cards = new Map();
    /** The state each card shows, for the clock between updates. */
    this.states = new Map();
    this.timer = null;
  }

  /** Keep running football clocks ticking between updates. */
  startClock(everyMs = 1000) {
    if (this.timer === null) this.timer = setInterval(() => this.tick(Date.now()), everyMs);
  }

  /** Redraw the clock of every card whose clock runs by itself. */
  tick(nowMs) {
    for (const [key, state] of this.states) {
      if (!ticking(state)) continue;
      const minute = this.cards.get(key)?.querySelector(".minute");
      const text = minuteText(state, nowMs);
      if (minute && minute.textContent !== text) minute.textContent = text;
    }
  }

  /** Show these sports (in this order), each empty until matches arrive. */
  setSports(sports) {
    this.root.replaceChildren();
    this.sections.clear();
    this.cards.clear();
    this.states.clear();
    for (const sport of sports) {
      const section = el("section");
      section.dataset.sport = sport;
      section.append(el("h2", null, sport));
      const list = el("div", "matches");
      list.append(el("p", "empty", "No live matches yet."));
      section.append(list);
      this.root.append(section);
      this.sections.set(sport, list);
    }
  }

  /** Draw `state` (already known to be newer than what is shown). */
  show(state, { flash = true } = {}) {
    const list = this.sections.get(state.sport);
    if (!list) return;
    const key = `${state.sport}/${state.match_id}`;
    let card = this.cards.get(key);
    if (!card) {
      card = this.newCard(state);
      list.querySelector(".empty")?.remove();
      // Keep cards ordered by match id so the board does not jump around.
      const after = [...list.children].find((c) => c.dataset.matchId > state.match_id);
      list.insertBefore(card, after ?? null);
      this.cards.set(key, card);
    }
    const q = (s) => card.querySelector(s);
    const [home, away] = teamNames(state);
    const status = q(".status");
    status.textContent = statusText(state.sport, state.score?.status_id);
    status.dataset.live = String(inPlay(state.sport, state.score?.status_id));
    q(".minute").textContent = minuteText(state, Date.now());
    this.states.set(key, state);
    q(".home-name").textContent = home;
    q(".away-name").textContent = away;
    const serving = servingSide(state);
    q(".home-name").dataset.serving = String(serving === 1);
    q(".away-name").dataset.serving = String(serving === 2);
    q(".score-home").textContent = state.score?.home?.score ?? "–";
    q(".score-away").textContent = state.score?.away?.score ?? "–";
    q(".detail").textContent = detailText(state.sport, state.score);
    q(".event").textContent = lastEventText(state);
    card.dataset.rev = String(state.rev);
    if (flash) {
      card.classList.add("updated");
      // Next frame: let the background fade back (CSS transition).
      requestAnimationFrame(() => requestAnimationFrame(() => card.classList.remove("updated")));
    }
  }

  newCard(state) {
    const card = el("article", "match");
    card.dataset.matchId = state.match_id;
    card.dataset.sport = state.sport;
    const head = el("div", "head");
    head.append(el("span", "id", `#${state.match_id}`), el("span", "status"), el("span", "minute"));
    const teams = el("div", "teams");
    teams.append(el("span", "home-name"), el("span", "score score-home"), el("span", "away-name"), el("span", "score score-away"));
    card.append(head, teams, el("div", "detail"), el("div", "event"));
    return card;
  }
}
