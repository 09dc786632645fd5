// Rendering of match states (the bridge's `tribune.sports.match.v2`
// messages, see bridge/README.md) into the board. Pure formatting helpers are
// exported for the unit tests; DOM code never uses innerHTML with feed data.

/** Provider status codes the page names; anything else shows as "status N". */
const STATUS = {
  football: { 1: "Not started", 2: "1st half", 3: "Half-time", 4: "2nd half", 5: "Overtime", 6: "Overtime", 7: "Penalties", 8: "Full time", 9: "Delayed", 10: "Interrupted", 12: "Cancelled", 13: "To be decided" },
  basketball: { 1: "Not started", 2: "Q1", 3: "Q2", 4: "Q3", 5: "Q4", 6: "Overtime", 7: "Half-time", 10: "Ended", 11: "Interrupted", 12: "Cancelled" },
  tennis: { 1: "Not started", 2: "In play", 3: "Ended", 100: "Ended" },
};

/** Status ids during which a match is being played (shown as live). */
const IN_PLAY = { football: [2, 4, 5, 6, 7], basketball: [2, 3, 4, 5, 6], tennis: [2] };

export function statusText(sport, statusId) {
  if (statusId === undefined || statusId === null) return "";
  return STATUS[sport]?.[statusId] ?? `status ${statusId}`;
}

export function inPlay(sport, statusId) {
  return (IN_PLAY[sport] ?? []).includes(statusId);
}

/**
 * The match minute to show, as the feed last said it (`minute`), else from
 * the latest incident or text-live line; "" when nothing says.
 */
export function minuteText(state) {
  const status = state.score?.status_id;
  if (!inPlay(state.sport, status)) return "";
  // The feed's minute is that of its latest event; in the second half an
  // event from the first says nothing about the clock, so show none.
  const floor = state.sport === "football" && status === 4 ? 46 : 0;
  if (Number.isInteger(state.minute)) return state.minute >= floor ? `${state.minute}'` : "";
  const times = [
    ...(state.incidents ?? []).map((i) => i.time),
    ...(state.tlive ?? []).map((t) => parseInt(t.time, 10)),
  ].filter(Number.isInteger);
  return times.length ? `${Math.max(...times)}'` : "";
}

/** Secondary score line: football half-time goals, quarters, set games. */
export function detailText(sport, score) {
  const h = score?.home?.detail ?? [];
  const a = score?.away?.detail ?? [];
  if (sport === "football" && h.length > 1 && a.length > 1) return `HT ${h[1]}–${a[1]}`;
  if (sport === "basketball") {
    return h.slice(0, 4).map((v, i) => `Q${i + 1} ${v}–${a[i] ?? 0}`).join("  ");
  }
  if (sport === "tennis") {
    const games = [];
    for (let i = 1; i < Math.min(h.length, a.length); i++) {
      if (h[i] || a[i]) games.push(`${h[i]}–${a[i]}`);
    }
    return games.join("  ");
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
  }

  /** Show these sports (in this order), each empty until matches arrive. */
  setSports(sports) {
    this.root.replaceChildren();
    this.sections.clear();
    this.cards.clear();
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
    q(".minute").textContent = minuteText(state);
    q(".home-name").textContent = home;
    q(".away-name").textContent = away;
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
