// The /live WebSocket: hands each message to `onMessage`, reconnects with exponential backoff (1 s … 30 s)
// when the connection drops, and reports its status ("connecting" | "open" | "closed") to `onStatus`.
const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

export class LiveSocket {
  constructor(path, { onMessage, onStatus }) {
    this.path = path;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.status = "connecting";
    this.delay = MIN_DELAY_MS;
    this.retryAt = null;           // epoch ms of the next attempt while closed
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    this.connect();
  }

  get url() {
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${this.path}`;
  }

  connect() {
    clearTimeout(this.timer);
    this.setStatus("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      console.warn("live connection:", error);
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => { this.delay = MIN_DELAY_MS; this.setStatus("open"); };
    socket.onmessage = (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      this.onMessage(data);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!this.stopped) this.scheduleRetry();
    };
  }

  scheduleRetry() {
    this.retryAt = Date.now() + this.delay;
    this.setStatus("closed");
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
  }

  setStatus(status) {
    this.status = status;
    if (status !== "closed") this.retryAt = null;
    this.onStatus(status);
  }

  /** Drop the connection now (it comes back after the backoff delay): for tests and a manual reconnect. */
  drop() {
    if (this.socket) this.socket.close();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close();
  }
}
