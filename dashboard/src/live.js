// A graphql-transport-ws client for Janua's subscriptions (`/graphql/ws`): authorizes in
// `connection_init`, reconnects with backoff when the socket drops and resumes each
// subscription with `after` = the last event id it saw, so nothing is missed or repeated.

/** One socket carrying every subscription of the dashboard. */
export class Live {
  /**
   * @param {() => string|null} token the current access token
   * @param {(state: string) => void} onState `connecting`, `live`, `reconnecting` or `idle`
   * @param {(code: string) => void} onEnded the server ended the session (e.g. `SESSION_REVOKED`)
   */
  constructor(token, onState, onEnded) {
    this.token = token;
    this.onState = onState;
    this.onEnded = onEnded;
    this.subs = new Map();
    this.nextId = 1;
    this.ws = null;
    this.stopped = true;
    this.retry = 0;
    this.timer = null;
  }

  /** Adds a subscription; `onEvent(event)` gets each event (the root field's value). */
  subscribe(query, field, variables, onEvent) {
    const id = String(this.nextId++);
    const sub = { id, query, field, variables, onEvent, after: null };
    this.subs.set(id, sub);
    if (this.ready) this.send(sub);
    return id;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.subs.clear();
    this.onState('idle');
  }

  connect() {
    const token = this.token();
    if (!token || this.stopped) return;
    this.ready = false;
    this.onState(this.retry ? 'reconnecting' : 'connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/graphql/ws`, 'graphql-transport-ws');
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    ws.onmessage = (m) => this.message(JSON.parse(m.data));
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ready = false;
      if (this.stopped) return;
      // 4401 after the access token expired: the refreshed token opens the next socket.
      if (e.code === 4401 && this.token() && this.token() !== token) {
        this.connect();
        return;
      }
      if (e.code === 4401 || e.code === 4403) {
        this.onEnded(e.code === 4403 ? 'SESSION_REVOKED' : 'UNAUTHENTICATED');
        return;
      }
      this.retry += 1;
      this.onState('reconnecting');
      const delay = Math.min(5000, 250 * 2 ** Math.min(this.retry, 5));
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  /** Drops the socket as a network failure would (the dashboard resumes with `after`). */
  drop() {
    if (this.ws) this.ws.close(4000, 'dropped');
  }

  send(sub) {
    const variables = { ...sub.variables };
    if (sub.after) variables.after = sub.after;
    this.ws.send(JSON.stringify({ id: sub.id, type: 'subscribe', payload: { query: sub.query, variables } }));
  }

  message(msg) {
    switch (msg.type) {
      case 'connection_ack':
        this.ready = true;
        this.retry = 0;
        this.onState('live');
        for (const sub of this.subs.values()) this.send(sub);
        break;
      case 'ping':
        this.ws.send(JSON.stringify({ type: 'pong' }));
        break;
      case 'next': {
        const sub = this.subs.get(msg.id);
        if (!sub) break;
        if (msg.payload.errors?.length) {
          this.error(msg.payload.errors);
          break;
        }
        const ev = msg.payload.data?.[sub.field];
        if (ev) {
          sub.after = ev.id;
          sub.onEvent(ev);
        }
        break;
      }
      case 'error':
        this.error(msg.payload);
        break;
      default:
        break;
    }
  }

  error(errors) {
    const code = errors?.[0]?.extensions?.code;
    if (code === 'SESSION_REVOKED' || code === 'UNAUTHENTICATED') this.onEnded(code);
  }
}
