// Janua's public GraphQL API over HTTP: the tokens live in this module's memory only (never in
// localStorage or a cookie) and are refreshed a minute before the access token expires.

let tokens = null; // {accessToken, refreshToken, expiresIn, sessionId}
let refreshTimer = null;
let onLost = () => {};

/** A GraphQL error with the server's stable code (`extensions.code`) and localized message. */
export class GqlError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/** Runs one query or mutation; resolves to `data`, rejects with a `GqlError`. */
export async function gql(query, variables = {}) {
  const headers = { 'content-type': 'application/json' };
  if (tokens) headers.authorization = `Bearer ${tokens.accessToken}`;
  const r = await fetch('/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  let body;
  try {
    body = await r.json();
  } catch {
    throw new GqlError(`HTTP ${r.status}`, 'HTTP');
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    const code = e.extensions?.code || 'ERROR';
    if ((code === 'UNAUTHENTICATED' || code === 'SESSION_REVOKED') && tokens) lose();
    throw new GqlError(e.message, code);
  }
  return body.data;
}

/** The current access token, or null when signed out. */
export const accessToken = () => tokens?.accessToken ?? null;
/** The current session's id. */
export const sessionId = () => tokens?.sessionId ?? null;

/** Keeps `t` (a `Tokens` object) and schedules its refresh; `lost` runs when the session ends. */
export function setTokens(t, lost) {
  tokens = t;
  if (lost) onLost = lost;
  clearTimeout(refreshTimer);
  const inMs = Math.max(5, t.expiresIn - 60) * 1000;
  refreshTimer = setTimeout(refresh, inMs);
}

async function refresh() {
  if (!tokens) return;
  try {
    const d = await gql(
      'mutation($i: RefreshInput!) { refresh(input: $i) { tokens { accessToken refreshToken expiresIn sessionId } } }',
      { i: { refreshToken: tokens.refreshToken } },
    );
    setTokens(d.refresh.tokens);
  } catch {
    lose();
  }
}

function lose() {
  clearTimeout(refreshTimer);
  tokens = null;
  onLost();
}

/** Signs out on the server (best effort) and forgets the tokens. */
export async function signOut() {
  if (tokens) {
    try {
      await gql('mutation { signout { success } }');
    } catch {
      /* the session may already be gone */
    }
  }
  clearTimeout(refreshTimer);
  tokens = null;
}
