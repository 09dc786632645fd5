// What the page reads from its own access token. The token is checked by
// tribune-auth (through the broker's auth callout), never here: the page only
// decodes it to know which sports to show and its private reply prefix.

function b64urlDecode(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "=");
  const bin = atob(b64);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/** The claims of a JWT, or null when `token` is not one. */
export function claims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const c = JSON.parse(b64urlDecode(parts[1]));
    return c && typeof c === "object" && !Array.isArray(c) ? c : null;
  } catch {
    return null;
  }
}

/** A claim as a list of strings (one string, or an array of them). */
export function listClaim(c, name) {
  const v = c?.[name];
  if (typeof v === "string") return [v];
  return Array.isArray(v) ? v.filter((x) => typeof x === "string") : [];
}

/**
 * tribune-auth's private inbox id (`user_inboxes`): the first 16 bytes of
 * SHA-256(iss + "\n" + sub), lowercase hex. The user may subscribe only to
 * `_INBOX.<id>.>`, so the client must use `_INBOX.<id>` as its inbox prefix.
 */
export async function inboxId(c) {
  if (typeof c?.iss !== "string" || typeof c?.sub !== "string") return null;
  const bytes = new TextEncoder().encode(`${c.iss}\n${c.sub}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
