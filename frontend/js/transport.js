// The only module that talks to the server: fetch for REST, one WebSocket for live runs.
export class Transport {
  constructor(onMessage, onStatus) {
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = null;
    this.queue = [];
    this.retry = 0;
    this.connect();
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/api/live`);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      clearInterval(this.ticker);
      this.onStatus('connected');
      for (const m of this.queue.splice(0)) ws.send(m);
    };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === 'error' && message.code === 'busy') this.busy = message;
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      // 1013: the server is full. Its error frame (or the close reason) says what and
      // why; the page says it in words and counts down to the retry the server asked for.
      const busy = event.code === 1013 ? this.busy : null;
      this.busy = null;
      let delay = Math.min(5000, 250 * 2 ** this.retry++);
      let why = 'the connection to the server was lost';
      if (event.code === 1013) {
        delay = 1000 * (busy && busy.retry_after ? busy.retry_after : 5);
        why = busy ? busy.message.replace(/; retrying in .*$/, '')
          : `the server is full (${event.reason || 'no reason given'})`;
      } else if (event.code === 1008 && event.reason) {
        why = `the server closed the connection: ${event.reason}`;
      }
      this.countdown(why, delay);
      setTimeout(() => this.connect(), delay);
    };
  }

  /** "<why> — trying again in N s", updated every second until the retry. */
  countdown(why, delay) {
    clearInterval(this.ticker);
    const until = Date.now() + delay;
    const show = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      this.onStatus(left > 0 ? `${why} — trying again in ${left} s` : `${why} — trying again now`);
      if (left <= 0) clearInterval(this.ticker);
    };
    show();
    this.ticker = setInterval(show, 1000);
  }

  send(message) {
    const text = JSON.stringify(message);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
    else this.queue.splice(0, this.queue.length, text); // only the newest intent matters
  }

  async json(path, options = {}) {
    const response = await fetch(path, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = Array.isArray(body.detail)
        ? body.detail.map((d) => `${(d.loc || []).join('.')}: ${d.msg}`).join('; ')
        : body.detail || response.statusText;
      throw Object.assign(new Error(detail), { status: response.status, body });
    }
    return body;
  }

  get(path, params) {
    const query = params ? `?${new URLSearchParams(params)}` : '';
    return this.json(path + query);
  }

  post(path, body) {
    return this.json(path, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body) });
  }

  async download(path, body, filename) {
    const options = body === undefined ? {} : { method: 'POST',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
    const response = await fetch(path, options);
    if (!response.ok) throw new Error(`download failed: ${response.status}`);
    const blob = await response.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
}
