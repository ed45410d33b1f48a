// Janua's live security dashboard: signs in with Janua itself and watches sessions and audit
// events over the public GraphQL schema (HTTP for queries and mutations, graphql-transport-ws
// for `sessionEvents` and `auditEvents`). No private API, no inline script, no CDN.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { t, LANG } from './i18n.js';
import { gql, setTokens, signOut, accessToken } from './api.js';
import { Live } from './live.js';
import { getAssertion, createCredential } from './webauthn.js';

const TOKENS = 'tokens { accessToken refreshToken expiresIn sessionId }';

/** `h('div', {class: 'x', onclick: f}, child, …)`: an element; strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const root = document.getElementById('app');
const hhmm = (s) => new Date(s * 1000).toLocaleTimeString(LANG, { hour: '2-digit', minute: '2-digit' });
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString(LANG) : '');
const dateTime = (iso) => (iso ? new Date(iso).toLocaleString(LANG) : '');
const debounce = (f, ms) => {
  let timer;
  return (...a) => {
    clearTimeout(timer);
    timer = setTimeout(() => f(...a), ms);
  };
};

document.documentElement.lang = LANG;
document.title = t('title');

// ---------------------------------------------------------------- sign-in

function showError(box, e) {
  box.textContent = e?.message || t('error');
  box.hidden = false;
}

function signInView(message) {
  const err = h('p', { class: 'error', role: 'alert', hidden: !message }, message || '');
  const email = h('input', { id: 'email', type: 'email', autocomplete: 'username webauthn', required: true });
  const password = h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    {
      id: 'signin',
      class: 'card narrow',
      onsubmit: async (e) => {
        e.preventDefault();
        err.hidden = true;
        try {
          const d = await gql(
            `mutation($i: SigninInput!) { signin(input: $i) { mfaRequired mfaToken methods ${TOKENS} } }`,
            { i: { email: email.value, password: password.value } },
          );
          if (d.signin.mfaRequired) mfaView(d.signin.mfaToken, d.signin.methods || []);
          else start(d.signin.tokens);
        } catch (x) {
          showError(err, x);
        }
      },
    },
    h('h1', {}, t('title')),
    h('label', { for: 'email' }, t('email')),
    email,
    h('label', { for: 'password' }, t('password')),
    password,
    h('button', { type: 'submit', id: 'signin-submit' }, t('signIn')),
    h('button', { type: 'button', id: 'signin-passkey', class: 'secondary', onclick: () => passkeySignIn(null, err) }, t('signInPasskey')),
    err,
  );
  root.replaceChildren(form);
  email.focus();
}

async function passkeySignIn(mfaToken, err) {
  err.hidden = true;
  try {
    const input = mfaToken ? { mfaToken } : {};
    const o = await gql(
      'mutation($i: PasskeyAuthenticationOptionsInput) { passkeyAuthenticationOptions(input: $i) { ceremonyId options } }',
      { i: input },
    );
    const credential = await getAssertion(o.passkeyAuthenticationOptions.options);
    const d = await gql(`mutation($i: AuthenticatePasskeyInput!) { authenticatePasskey(input: $i) { ${TOKENS} } }`, {
      i: { ceremonyId: o.passkeyAuthenticationOptions.ceremonyId, credential, mfaToken },
    });
    start(d.authenticatePasskey.tokens);
  } catch (x) {
    showError(err, x);
  }
}

function mfaView(mfaToken, methods) {
  const err = h('p', { class: 'error', role: 'alert', hidden: true });
  const code = h('input', { id: 'mfa-code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
  root.replaceChildren(
    h(
      'form',
      {
        id: 'mfa',
        class: 'card narrow',
        onsubmit: async (e) => {
          e.preventDefault();
          err.hidden = true;
          try {
            const d = await gql(`mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { ${TOKENS} } }`, {
              i: { mfaToken, code: code.value.trim() },
            });
            start(d.verifyMfa.tokens);
          } catch (x) {
            showError(err, x);
          }
        },
      },
      h('h1', {}, t('mfaTitle')),
      h('label', { for: 'mfa-code' }, t('mfaCode')),
      code,
      h('button', { type: 'submit', id: 'mfa-submit' }, t('verify')),
      methods.includes('passkey') &&
        h('button', { type: 'button', class: 'secondary', onclick: () => passkeySignIn(mfaToken, err) }, t('usePasskey')),
      h('button', { type: 'button', class: 'link', onclick: () => signInView() }, t('back')),
      err,
    ),
  );
  code.focus();
}

// ---------------------------------------------------------------- the dashboard

let live = null;
let ctx = null; // {me, isAdmin, orgs: [{organizationId, organizationName, role}]}

function ended(code) {
  if (live) live.stop();
  live = null;
  ctx = null;
  signInView(code === 'SESSION_REVOKED' ? t('conn_idle') : undefined);
}

async function start(tokens) {
  setTokens(tokens, () => ended('SESSION_REVOKED'));
  const d = await gql('{ me { id email name isAdmin } }');
  const roles = await gql('query($u: ID!) { userRoles(userId: $u) { global organizations { organizationId organizationName role } } }', {
    u: d.me.id,
  });
  const orgs = roles.userRoles.organizations.filter((o) => o.role === 'owner' || o.role === 'admin');
  ctx = { me: d.me, isAdmin: d.me.isAdmin, orgs };
  emails.set(d.me.id, d.me.email);
  if (!ctx.isAdmin && !orgs.length) {
    await signOut();
    signInView(t('notAllowed'));
    return;
  }
  if (ctx.isAdmin) {
    try {
      const all = await gql('{ adminOrganizations(first: 100, orderBy: "name:asc") { nodes { organization { id name } } } }');
      const known = new Set(orgs.map((o) => o.organizationId));
      for (const n of all.adminOrganizations.nodes) {
        if (!known.has(n.organization.id)) ctx.orgs.push({ organizationId: n.organization.id, organizationName: n.organization.name, role: 'admin' });
      }
    } catch {
      /* the organizations the admin belongs to stay listed */
    }
  }
  dashboard();
}

function card(id, title, ...body) {
  return h('section', { class: 'card', id }, h('h2', {}, title), ...body);
}

function dashboard() {
  const conn = h('span', { id: 'conn', class: 'conn', 'data-state': 'connecting' }, t('conn_connecting'));
  const header = h(
    'header',
    {},
    h('h1', {}, t('title')),
    conn,
    h('span', { class: 'who', id: 'who' }, ctx.me.email, ' · ', ctx.isAdmin ? t('admin') : t('orgAdmin')),
    h(
      'button',
      {
        id: 'signout',
        class: 'secondary',
        onclick: async () => {
          if (live) live.stop();
          live = null;
          await signOut();
          signInView();
        },
      },
      t('signOut'),
    ),
  );
  const panels = {
    sessions: sessionsPanel(),
    chart: chartPanel(),
    audit: auditPanel(),
    adoption: adoptionPanel(),
    webhooks: webhooksPanel(),
    members: membersPanel(),
  };
  root.replaceChildren(
    header,
    h('main', { class: 'grid' }, panels.sessions.el, panels.chart.el, panels.audit.el, panels.adoption.el, panels.webhooks.el, panels.members.el),
    detailDialog,
  );
  panels.chart.mount();

  live = new Live(
    accessToken,
    (state) => {
      conn.dataset.state = state;
      conn.textContent = t(`conn_${state}`);
    },
    ended,
  );
  live.subscribe(
    'subscription($after: ID) { sessionEvents(after: $after) { id type action sessionId userId occurredAt } }',
    'sessionEvents',
    {},
    (ev) => panels.sessions.event(ev),
  );
  live.subscribe(
    'subscription($after: ID) { auditEvents(after: $after) { id action actor { type id } target { type id } organizationId occurredAt data } }',
    'auditEvents',
    {},
    (ev) => {
      const row = fromEvent(ev);
      panels.audit.add(row, true);
      panels.chart.add(row);
      panels.adoption.event(row);
      panels.webhooks.event(row);
      panels.members.event(row);
    },
  );
  live.start();
  // For tests and the curious: `window.janua.drop()` drops the socket as a network failure would.
  window.janua = { drop: () => live && live.drop() };
}

// ---------------------------------------------------------------- sessions

const SESSION = 'id ipAddress userAgent device { browser os type } authMethod createdAt lastActiveAt current';

function sessionsPanel() {
  const body = h('tbody');
  const feed = h('ul', { class: 'feed', id: 'member-sessions' });
  const el = card(
    'sessions',
    t('sessions'),
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, [t('device'), t('ip'), t('method'), t('lastActive'), ''].map((c) => h('th', {}, c)))), body)),
    h('h3', {}, t('memberSessions')),
    feed,
  );
  const revoke = async (e, id) => {
    e.target.disabled = true;
    await gql('mutation($id: ID!) { terminateSession(id: $id) { success } }', { id }).catch(() => {});
    reload();
  };
  const row = (s) =>
    h(
      'tr',
      { 'data-session-id': s.id, 'data-pending': s.pending, class: s.current ? 'current' : '' },
      h('td', { title: s.userAgent || '' }, s.pending ? '…' : [s.device.browser, s.device.os].filter(Boolean).join(' · ') || s.device.type),
      h('td', {}, s.ipAddress || ''),
      h('td', {}, s.authMethod || ''),
      h('td', {}, time(s.lastActiveAt)),
      h('td', {}, s.current ? h('em', {}, t('current')) : h('button', { class: 'danger small', 'data-revoke': s.id, onclick: (e) => revoke(e, s.id) }, t('revoke'))),
    );
  const load = async () => {
    const d = await gql(`{ sessions(first: 100, orderBy: "created_at:desc") { nodes { ${SESSION} } } }`);
    body.replaceChildren(...d.sessions.nodes.map(row));
  };
  const reload = debounce(() => load().catch(() => {}), 30);
  // A new session shows at once from its event (its id is all Revoke needs), then its details.
  const created = async (ev) => {
    if (body.querySelector(`tr[data-session-id="${CSS.escape(ev.sessionId)}"]`)) return;
    body.prepend(row({ id: ev.sessionId, lastActiveAt: ev.occurredAt, pending: true }));
    try {
      const d = await gql(`query($id: ID!) { session(id: $id) { ${SESSION} } }`, { id: ev.sessionId });
      body.querySelector(`tr[data-session-id="${CSS.escape(ev.sessionId)}"]`)?.replaceWith(row(d.session));
    } catch {
      reload();
    }
  };
  load().catch(() => {});
  return {
    el,
    event(ev) {
      if (ev.userId !== ctx.me.id) {
        feed.prepend(h('li', {}, h('code', {}, ev.action), ' ', h('span', { class: 'muted' }, ev.userId), ' ', time(ev.occurredAt)));
        while (feed.children.length > 20) feed.lastChild.remove();
      } else if (ev.type === 'CREATED') created(ev);
      else if (ev.type === 'REVOKED' || ev.type === 'REFRESH_REUSE_DETECTED') {
        body.querySelector(`tr[data-session-id="${CSS.escape(ev.sessionId)}"]`)?.remove();
      } else reload();
    },
  };
}

// ---------------------------------------------------------------- audit stream

/** A live `AuditEvent` and an `AuditLog` row in one shape. */
function fromEvent(ev) {
  return { id: ev.id, action: ev.action, actorType: ev.actor?.type, actorId: ev.actor?.id, targetType: ev.target?.type, targetId: ev.target?.id, organizationId: ev.organizationId, at: ev.occurredAt, data: ev.data, raw: ev };
}
const emails = new Map(); // user id → email, learned from `auditLogs` rows and `me`
function fromLog(l) {
  if (l.actor.id && l.actor.email) emails.set(l.actor.id, l.actor.email);
  return { id: l.id, action: l.action, actorType: l.actor.type, actorId: l.actor.id, actorEmail: l.actor.email, targetType: l.target.type, targetId: l.target.id, organizationId: l.organizationId, at: l.createdAt, data: l.metadata, raw: l };
}

const detailBody = h('pre', { id: 'detail-body' });
const detailDialog = h(
  'dialog',
  { id: 'detail' },
  h('h2', {}, t('details')),
  detailBody,
  h('button', { class: 'secondary', onclick: () => detailDialog.close() }, t('close')),
);

function auditPanel() {
  const rows = new Map(); // id → row, newest last
  const body = h('tbody');
  const action = h('input', { id: 'f-action', placeholder: t('actionPrefix'), 'aria-label': t('actionPrefix') });
  const actor = h('input', { id: 'f-actor', placeholder: t('actor'), 'aria-label': t('actor') });
  const org = h(
    'select',
    { id: 'f-org', 'aria-label': t('organization') },
    h('option', { value: '' }, `${t('organization')}: ${t('all')}`),
    ctx.orgs.map((o) => h('option', { value: o.organizationId }, o.organizationName)),
  );
  const orgName = (id) => ctx.orgs.find((o) => o.organizationId === id)?.organizationName || id || '';
  const prefix = () => action.value.trim().replace(/\*$/, '');
  const matches = (r) =>
    r.action.startsWith(prefix()) && (!actor.value.trim() || r.actorId === actor.value.trim()) && (!org.value || r.organizationId === org.value);
  const rowEl = (r) =>
    h(
      'tr',
      { 'data-audit-id': r.id, 'data-action': r.action, 'data-org': r.organizationId || '', tabindex: 0, onclick: () => show(r), onkeydown: (e) => e.key === 'Enter' && show(r) },
      h('td', {}, time(r.at)),
      h('td', {}, h('code', {}, r.action)),
      h('td', { class: 'muted' }, r.actorEmail || emails.get(r.actorId) || [r.actorType, r.actorId].filter(Boolean).join(' ')),
      h('td', { class: 'muted' }, [r.targetType, r.targetId].filter(Boolean).join(' ')),
      h('td', {}, orgName(r.organizationId)),
    );
  const show = (r) => {
    detailBody.textContent = JSON.stringify(r.raw, null, 2);
    detailDialog.showModal();
  };
  const render = () => {
    const shown = [...rows.values()].filter(matches).slice(-200).reverse();
    body.replaceChildren(...shown.map(rowEl));
  };
  const history = async () => {
    if (!ctx.isAdmin) return; // the audit log's history is the administrators' (`auditLogs`)
    const p = prefix();
    const v = { first: 100, actorId: actor.value.trim() || null, organizationId: org.value || null };
    if (p.endsWith('.')) v.action = `${p}*`;
    const d = await gql(
      'query($first: Int, $action: String, $actorId: ID, $organizationId: ID) { auditLogs(first: $first, action: $action, actorId: $actorId, organizationId: $organizationId) { nodes { id action actor { type id email } organizationId target { type id } ipAddress userAgent requestId metadata createdAt } } }',
      v,
    );
    for (const l of d.auditLogs.nodes.reverse()) if (!rows.has(l.id)) rows.set(l.id, fromLog(l));
    const sorted = [...rows.values()].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    rows.clear();
    for (const r of sorted) rows.set(r.id, r);
    render();
  };
  const refilter = debounce(() => {
    render();
    history().catch(() => {});
  }, 200);
  for (const f of [action, actor]) f.addEventListener('input', refilter);
  org.addEventListener('change', refilter);
  history().catch(() => {});
  const el = card(
    'audit',
    t('audit'),
    h('div', { class: 'filters' }, action, actor, org),
    h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, [t('when'), t('action'), t('actor'), t('target'), t('organization')].map((c) => h('th', {}, c)))), body)),
  );
  return {
    el,
    add(r) {
      if (rows.has(r.id)) return;
      rows.set(r.id, r);
      while (rows.size > 2000) rows.delete(rows.keys().next().value);
      if (matches(r)) {
        body.prepend(rowEl(r));
        while (body.children.length > 200) body.lastChild.remove();
      }
    },
  };
}

// ---------------------------------------------------------------- sign-ins per minute

const SIGNIN = new Set(['user.signed_in', 'sso.signed_in']);
const FAILURE = new Set(['user.signin_failed', 'sso.signin_failed']);

function chartPanel() {
  const box = h('div', { class: 'chart', id: 'chart-box' });
  const el = card('chart', t('chart'), box);
  const seen = new Set();
  const counts = new Map(); // minute (epoch s) → [signins, failures]
  let plot = null;
  const minute = (iso) => Math.floor(new Date(iso).getTime() / 60000) * 60;
  const data = () => {
    const now = Math.floor(Date.now() / 60000) * 60;
    const xs = [];
    const a = [];
    const b = [];
    for (let m = now - 59 * 60; m <= now; m += 60) {
      const c = counts.get(m) || [0, 0];
      xs.push(m);
      a.push(c[0]);
      b.push(c[1]);
    }
    return [xs, a, b];
  };
  const add = (r) => {
    const kind = SIGNIN.has(r.action) ? 0 : FAILURE.has(r.action) ? 1 : -1;
    if (kind < 0 || seen.has(r.id)) return;
    seen.add(r.id);
    const m = minute(r.at);
    const c = counts.get(m) || [0, 0];
    c[kind] += 1;
    counts.set(m, c);
    redraw();
  };
  const redraw = debounce(() => plot && plot.setData(data()), 100);
  const seed = async () => {
    if (!ctx.isAdmin) return;
    const from = new Date(Date.now() - 3600 * 1000).toISOString();
    for (const action of [...SIGNIN, ...FAILURE]) {
      const d = await gql('query($a: String, $f: String) { auditLogs(first: 100, action: $a, from: $f) { nodes { id action createdAt } } }', { a: action, f: from });
      for (const l of d.auditLogs.nodes) add({ id: l.id, action: l.action, at: l.createdAt });
    }
  };
  return {
    el,
    add,
    mount() {
      const width = () => Math.max(260, box.clientWidth || 300);
      plot = new uPlot(
        {
          width: width(),
          height: 200,
          scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(4, max + 1)] } },
          series: [
            { label: t('when'), value: (u, v) => (v == null ? '' : hhmm(v)) },
            { label: t('signins'), stroke: '#2563eb', fill: 'rgba(37,99,235,.12)', width: 2 },
            { label: t('failures'), stroke: '#dc2626', fill: 'rgba(220,38,38,.10)', width: 2 },
          ],
          axes: [{ values: (u, splits) => splits.map(hhmm) }, { size: 36 }],
        },
        data(),
        box,
      );
      new ResizeObserver(() => plot.setSize({ width: width(), height: 200 })).observe(box);
      setInterval(() => plot.setData(data()), 15000);
      seed().catch(() => {});
    },
  };
}

// ---------------------------------------------------------------- adoption

function adoptionPanel() {
  const body = h('div', { id: 'adoption-body' });
  const mine = h('div', { id: 'my-account' });
  const note = h('p', { class: 'muted', role: 'status' });
  const bar = (label, n, total, rate, id) =>
    h(
      'div',
      { class: 'meter', id },
      h('div', { class: 'meter-label' }, h('span', {}, label), h('strong', {}, `${Math.round(rate * 100)} %`), h('span', { class: 'muted' }, `${n} / ${total} ${t('users')}`)),
      h('div', { class: 'meter-track' }, fill(rate)),
    );
  // Through the CSSOM: the Content-Security-Policy refuses style attributes.
  const fill = (rate) => {
    const el = h('div', { class: 'meter-fill' });
    el.style.width = `${Math.round(rate * 100)}%`;
    return el;
  };
  const load = async () => {
    if (ctx.isAdmin) {
      const d = await gql('{ analytics { usersTotal usersWithMfa usersWithPasskeys mfaAdoptionRate passkeyAdoptionRate } }');
      const a = d.analytics;
      body.replaceChildren(
        bar(t('mfa'), a.usersWithMfa, a.usersTotal, a.mfaAdoptionRate, 'adoption-mfa'),
        bar(t('passkeys'), a.usersWithPasskeys, a.usersTotal, a.passkeyAdoptionRate, 'adoption-passkeys'),
      );
    } else body.replaceChildren(h('p', { class: 'muted' }, t('adminOnly')));
    const s = await gql('{ mfaStatus { enabled passkeyCount } }');
    mine.replaceChildren(
      h('h3', {}, t('yourAccount')),
      h('p', {}, s.mfaStatus.enabled ? t('mfaOn') : t('mfaOff'), ' · ', h('span', { id: 'passkey-count' }, String(s.mfaStatus.passkeyCount)), ' ', t('yourPasskeys')),
      h('button', { id: 'add-passkey', class: 'secondary', onclick: addPasskey }, t('addPasskey')),
      note,
    );
  };
  const addPasskey = async () => {
    note.textContent = '';
    try {
      const o = await gql('mutation { passkeyRegistrationOptions { ceremonyId options } }');
      const credential = await createCredential(o.passkeyRegistrationOptions.options);
      await gql('mutation($i: RegisterPasskeyInput!) { registerPasskey(input: $i) { id } }', {
        i: { ceremonyId: o.passkeyRegistrationOptions.ceremonyId, credential, name: 'dashboard' },
      });
      await load();
      note.textContent = t('passkeyAdded');
    } catch (x) {
      note.textContent = x?.message || t('error');
    }
  };
  const reload = debounce(() => load().catch(() => {}), 500);
  load().catch(() => {});
  return {
    el: card('adoption', t('adoption'), body, mine),
    event(r) {
      if (r.action.startsWith('security.mfa.') || r.action.startsWith('security.passkey.') || r.action.startsWith('user.')) {
        if (!SIGNIN.has(r.action) && !FAILURE.has(r.action)) reload();
      }
    },
  };
}

// ---------------------------------------------------------------- webhooks

function webhooksPanel() {
  const body = h('tbody');
  const total = h('p', { class: 'muted', id: 'webhook-backlog' });
  const load = async () => {
    const scopes = [null, ...ctx.orgs.filter((o) => o.role === 'owner' || o.role === 'admin' || ctx.isAdmin).map((o) => o.organizationId)];
    const hooks = [];
    for (const organizationId of scopes) {
      try {
        const d = await gql(
          'query($o: ID) { webhooks(organizationId: $o, first: 50) { nodes { id url active disabledReason failingSince organizationId } } }',
          { o: organizationId },
        );
        hooks.push(...d.webhooks.nodes);
      } catch {
        /* not this caller's to see */
      }
    }
    const rows = [];
    for (const w of hooks) {
      let pending = '';
      try {
        const d = await gql('query($w: ID!) { webhookDeliveries(webhookId: $w, first: 100) { nodes { status } } }', { w: w.id });
        const n = d.webhookDeliveries.nodes.filter((x) => x.status === 'pending').length;
        pending = n >= 100 ? '≥ 100' : String(n);
      } catch {
        /* unknown */
      }
      const state = !w.active ? `${t('disabled')}${w.disabledReason ? ` (${w.disabledReason})` : ''}` : w.failingSince ? `${t('failing')} ${dateTime(w.failingSince)}` : t('ok');
      rows.push(
        h(
          'tr',
          { 'data-webhook-id': w.id, class: w.failingSince || !w.active ? 'bad' : '' },
          h('td', { class: 'url' }, w.url),
          h('td', {}, state),
          h('td', {}, pending),
        ),
      );
    }
    body.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 3, class: 'muted' }, t('noWebhooks')))]));
    if (ctx.isAdmin) {
      const d = await gql('{ healthDetailed { webhookBacklog } }').catch(() => null);
      total.textContent = d && d.healthDetailed.webhookBacklog != null ? `${t('totalBacklog')}: ${d.healthDetailed.webhookBacklog}` : '';
    }
  };
  const reload = debounce(() => load().catch(() => {}), 500);
  load().catch(() => {});
  setInterval(reload, 30000);
  return {
    el: card('webhooks', t('webhooks'), h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, [t('url'), t('state'), t('backlog')].map((c) => h('th', {}, c)))), body)), total),
    event(r) {
      if (r.action.startsWith('webhook.')) reload();
    },
  };
}

// ---------------------------------------------------------------- members

function membersPanel() {
  const body = h('tbody');
  const select = h(
    'select',
    { id: 'members-org', 'aria-label': t('organization') },
    ctx.orgs.map((o) => h('option', { value: o.organizationId }, o.organizationName)),
  );
  const load = async () => {
    if (!select.value) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: 3, class: 'muted' }, t('none'))));
      return;
    }
    const d = await gql('query($o: ID!) { organizationMembers(organizationId: $o, first: 100) { nodes { user { id email name } role joinedAt } } }', {
      o: select.value,
    });
    body.replaceChildren(
      ...d.organizationMembers.nodes.map((m) =>
        h('tr', { 'data-member-id': m.user.id }, h('td', {}, m.user.email, m.user.name ? h('span', { class: 'muted' }, ` ${m.user.name}`) : ''), h('td', {}, h('span', { class: `role role-${m.role}` }, m.role)), h('td', {}, dateTime(m.joinedAt))),
      ),
    );
  };
  const reload = debounce(() => load().catch((x) => body.replaceChildren(h('tr', {}, h('td', { colspan: 3, class: 'error' }, x.message)))), 100);
  select.addEventListener('change', reload);
  reload();
  return {
    el: card('members', t('members'), select, h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, [t('email'), t('role'), t('joined')].map((c) => h('th', {}, c)))), body))),
    event(r) {
      if (r.action.startsWith('organization.member.') && r.organizationId === select.value) reload();
    },
  };
}

signInView();
