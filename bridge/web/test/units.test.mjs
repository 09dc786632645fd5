// The page's pure parts, in node: formatting, the newest-rev rule, token reading.
import { test } from "node:test";
import assert from "node:assert/strict";
import { detailText, inPlay, lastEventText, minuteText, servingSide, statusText, teamNames, ticking } from "../view.js";
import { Matches, SCHEMA } from "../feed.js";
import { claims, inboxId, listClaim } from "../token.js";

const enc = (o) => new TextEncoder().encode(JSON.stringify(o));

test("status names per sport, from the provider's codes", () => {
  assert.equal(statusText("football", 2), "1st half");
  assert.equal(statusText("football", 8), "Full time");
  assert.equal(statusText("basketball", 4), "Q2");
  assert.equal(statusText("basketball", 5), "Half-time");
  assert.equal(statusText("basketball", 9), "Overtime");
  assert.equal(statusText("basketball", 10), "Ended");
  assert.equal(statusText("tennis", 3), "In play", "3 is in play, not ended");
  assert.equal(statusText("tennis", 52), "Set 2");
  assert.equal(statusText("tennis", 100), "Ended");
  assert.equal(statusText("tennis", 2), "status 2", "not a tennis code");
  assert.equal(statusText("curling", 3), "status 3");
  assert.equal(statusText("football", undefined), "");
  assert.ok(inPlay("basketball", 8) && !inPlay("basketball", 5) && !inPlay("basketball", 10));
  assert.ok(inPlay("tennis", 53) && inPlay("tennis", 3) && !inPlay("tennis", 100));
});

test("football minute ticks from the half's kick-off time", () => {
  const ts = 1767293460;
  const at = (secs) => (ts + secs) * 1000;
  const s = {
    sport: "football",
    score: { status_id: 4, kickoff_ts: ts },
    clock: { period: 2, minute: 67, stoppage: 0, kickoff_ts: ts, offset: 45, running: true },
  };
  assert.equal(minuteText(s, at(21 * 60 + 30)), "67'");
  assert.equal(minuteText(s, at(22 * 60)), "68'", "a minute later, no update needed");
  assert.equal(minuteText(s, at(47 * 60 + 1)), "90+3'", "stoppage time");
  assert.equal(minuteText(s, at(-30)), "46'", "a kick-off time slightly ahead of us");
  const first = { ...s, clock: { ...s.clock, period: 1, offset: 0 } };
  assert.equal(minuteText(first, at(46 * 60)), "45+2'");
  assert.ok(ticking(s) && !ticking({ ...s, clock: { ...s.clock, running: false } }));
  // Not running: the minute as of the update.
  const stale = { sport: "football", clock: { period: 1, minute: 45, stoppage: 2, offset: 0, running: false } };
  assert.equal(minuteText(stale, at(9999)), "45+2'");
  assert.equal(minuteText({ sport: "football", clock: { period: 3, running: false } }, at(0)), "", "extra time: no minute known");
  assert.equal(minuteText({ sport: "football", clock: null, score: { status_id: 3 } }, at(0)), "", "half-time");
  assert.equal(minuteText({ sport: "football", minute: 70 }, at(0)), "", "no clock, no minute");
});

test("basketball and tennis clocks", () => {
  const b = { sport: "basketball", clock: { period: 2, remaining_s: 431, running: false } };
  assert.equal(minuteText(b, 0), "7:11");
  assert.equal(minuteText({ ...b, clock: { period: 5, remaining_s: 5, running: false } }, 0), "0:05");
  assert.ok(!ticking(b));
  const t = { sport: "tennis", clock: { period: 2, game: 6, serving: 2, running: false } };
  assert.equal(minuteText(t, 0), "Game 6");
  assert.equal(servingSide(t), 2);
  assert.equal(servingSide({ ...t, clock: { serving: 1 } }), 1);
  assert.equal(minuteText({ ...t, clock: { serving: 1 } }, 0), "", "set unknown (status 3)");
  assert.equal(servingSide({ ...t, clock: null }), null);
  assert.equal(servingSide({ sport: "football", clock: { serving: 1 } }), null);
});

test("score details per sport", () => {
  const score = (h, a, hx = {}, ax = {}) => ({ home: { detail: h, ...hx }, away: { detail: a, ...ax } });
  assert.equal(detailText("football", score([2, 1, 0, 1, 6, 0, 0], [1, 0, 0, 3, 2, 0, 0])), "HT 1–0");
  assert.equal(
    detailText("football", score([1, 0, 0, 0, 3, 2, 4], [1, 1, 0, 2, 5, 2, 3], { penalties: 4 }, { penalties: 3 })),
    "HT 0–1  Pens 4–3",
  );
  assert.equal(detailText("basketball", score([27, 22, 0, 0, 0], [24, 25, 0, 0, 0])), "Q1 27–24  Q2 22–25  Q3 0–0  Q4 0–0");
  assert.equal(
    detailText("basketball", score([25, 20, 22, 18, 9], [21, 24, 20, 20, 7])),
    "Q1 25–21  Q2 20–24  Q3 22–20  Q4 18–20  OT 9–7",
  );
  assert.equal(detailText("tennis", score([6, 2], [3, 3])), "6–3  2–3");
  assert.equal(
    detailText("tennis", score([7, 4, 1], [6, 6, 0], { tiebreaks: [7, null, null] }, { tiebreaks: [5, null, null] })),
    "7–6 (7–5)  4–6  1–0",
  );
  assert.equal(lastEventText({ tlive: [{ time: "12'", data: "Goal!" }] }), "12' Goal!");
  assert.equal(lastEventText({ tlive: [{ time: "55'", data: "55' - Corner" }] }), "55' - Corner", "no doubled minute");
  assert.equal(lastEventText({ tlive: [{ time: "45'+2'", data: "45'+2' Corner, home side." }] }), "45'+2' Corner, home side.");
  assert.equal(lastEventText({ tlive: [{ time: "", data: "Line-ups are out." }] }), "Line-ups are out.");
  assert.deepEqual(teamNames({ extra: { home_team: "Ajax" } }), ["Ajax", "Away"]);
});

test("only a newer rev of a match is taken", () => {
  const m = new Matches();
  const st = (rev, id = "1") => enc({ schema: SCHEMA, sport: "football", match_id: id, rev });
  assert.ok(m.accept(st(3)));
  assert.equal(m.accept(st(3)), null, "same rev again (snapshot and live overlap)");
  assert.equal(m.accept(st(2)), null, "older");
  assert.ok(m.accept(st(4)));
  assert.ok(m.accept(st(1, "2")), "another match");
  assert.equal(m.accept(enc({ schema: "other", sport: "football", match_id: "9", rev: 1 })), null);
  assert.equal(m.accept(new TextEncoder().encode("not json")), null);
});

test("token claims and the private inbox id", async () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const t = `${b64({ alg: "HS256" })}.${b64({ iss: "idp", sub: "bob", sports: ["football"] })}.sig`;
  const c = claims(t);
  assert.deepEqual(listClaim(c, "sports"), ["football"]);
  assert.deepEqual(listClaim({ sports: "tennis" }, "sports"), ["tennis"]);
  assert.equal(claims("garbage"), null);
  // tribune-auth's permissions::inbox_id("idp", "bob") (its unit test pins the same value).
  assert.equal(await inboxId(c), "ad4a59582425ee42e9719573de12c950");
});
