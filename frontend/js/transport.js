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
      this.onStatus('connected');
      for (const m of this.queue.splice(0)) ws.send(m);
    };
    ws.onmessage = (event) => this.onMessage(JSON.parse(event.data));
    ws.onclose = (event) => {
      this.onStatus(event.code === 1013 ? 'server busy — retrying' : 'disconnected — retrying');
      const delay = Math.min(5000, 250 * 2 ** this.retry++);
      setTimeout(() => this.connect(), delay);
    };
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
