// The page's pure parts, in node: formatting, the newest-rev rule, token reading.
import { test } from "node:test";
import assert from "node:assert/strict";
import { detailText, lastEventText, minuteText, statusText, teamNames } from "../view.js";
import { Matches, SCHEMA } from "../feed.js";
import { claims, inboxId, listClaim } from "../token.js";

const enc = (o) => new TextEncoder().encode(JSON.stringify(o));

test("statuses and minutes", () => {
  assert.equal(statusText("football", 2), "1st half");
  assert.equal(statusText("football", 8), "Full time");
  assert.equal(statusText("curling", 3), "status 3");
  assert.equal(statusText("football", undefined), "");
  const s = { sport: "football", score: { status_id: 4 }, incidents: [{ time: 61 }], tlive: [{ time: "67'" }] };
  assert.equal(minuteText(s), "67'");
  assert.equal(minuteText({ ...s, minute: 70 }), "70'");
  assert.equal(minuteText({ ...s, score: { status_id: 8 } }), "", "no minute once ended");
  assert.equal(minuteText({ ...s, minute: 41 }), "", "a first-half event's minute in the second half");
});

test("score details per sport", () => {
  const score = (h, a) => ({ home: { detail: h }, away: { detail: a } });
  assert.equal(detailText("football", score([2, 1, 0], [1, 0, 0])), "HT 1–0");
  assert.equal(detailText("basketball", score([20, 18, 0, 0, 0], [22, 15, 0, 0, 0])), "Q1 20–22  Q2 18–15  Q3 0–0  Q4 0–0");
  assert.equal(detailText("tennis", score([1, 6, 3, 0], [0, 4, 2, 0])), "6–4  3–2");
  assert.equal(lastEventText({ tlive: [{ time: "12'", data: "Goal!" }] }), "12' Goal!");
  assert.equal(lastEventText({ tlive: [{ time: "55'", data: "55' - Corner" }] }), "55' - Corner", "no doubled minute");
  assert.equal(lastEventText({ tlive: [{ time: "55'", data: "55 Corner (A. Dubois)" }] }), "55 Corner (A. Dubois)");
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
