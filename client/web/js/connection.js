// The MQTT connection: a SigV4-presigned WebSocket URL, mqtt.js, and our own reconnect loop.
// mqtt.js's built-in reconnect reuses the first URL, whose signature and credentials expire;
// so every attempt here signs a new URL, with credentials renewed when they near expiry.

import mqtt from "/vendor/mqtt.js";
import { AwsV4Signer } from "/vendor/aws4fetch.js";

export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_MAX_MS = 30000;
const KEEPALIVE_S = 30;
const CONNECT_TIMEOUT_MS = 10000;
// AWS IoT Core takes at most 8 topic filters in one SUBSCRIBE and 50 subscriptions per
// connection (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits);
// the local gateway enforces the same numbers.
export const FILTERS_PER_SUBSCRIBE = 8;
export const SUBSCRIPTIONS_PER_CONNECTION = 50;

// The topics in SUBSCRIBE-sized chunks, in order.
export function chunks(topics, size = FILTERS_PER_SUBSCRIBE) {
  const out = [];
  for (let i = 0; i < topics.length; i += size) out.push(topics.slice(i, i + size));
  return out;
}

// mqtt.js's timer interface (setInterval semantics) over js/timer-worker.js, falling back to
// the page's own timers where workers are unavailable.
export class WorkerIntervals {
  constructor() {
    this.callbacks = new Map();
    this.nextId = 1;
    try {
      this.worker = new Worker("/js/timer-worker.js");
      this.worker.onmessage = (event) => {
        const callback = this.callbacks.get(event.data);
        if (callback) callback();
      };
    } catch {
      this.worker = null;
    }
    this.set = (callback, ms) => {
      if (!this.worker) return setInterval(callback, ms);
      const id = this.nextId++;
      this.callbacks.set(id, callback);
      this.worker.postMessage({ op: "set", id, ms });
      return id;
    };
    this.clear = (id) => {
      if (!this.worker) return clearInterval(id);
      this.callbacks.delete(id);
      this.worker.postMessage({ op: "clear", id });
    };
  }
}

let intervals = null;

// A presigned wss/ws URL as AWS IoT Core takes it: service "iotdevicegateway", the session
// token appended after signing (aws4fetch does that for this service).
export async function presignedUrl(url, region, credentials) {
  const signer = new AwsV4Signer({
    url,
    method: "GET",
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    sessionToken: credentials.sessionToken,
    service: "iotdevicegateway",
    region,
    signQuery: true,
  });
  const signed = await signer.sign();
  return signed.url.toString();
}

// "Full jitter": a random wait up to the exponentially growing cap, so clients that lost the
// network together do not come back together.
export function backoffDelay(attempt) {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

export class Connection extends EventTarget {
  constructor({ url, region, session, topics }) {
    super();
    this.url = url;
    this.region = region;
    this.session = session;
    this.topics = topics; // () => the topics to be subscribed to now
    this.client = null;
    this.attempt = 0;
    this.timer = null;
    this.closed = false;
    this.connected = false;
    this.onOnline = () => this.retryNow();
    window.addEventListener("online", this.onOnline);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  start() {
    this.open();
  }

  async open() {
    this.timer = null;
    if (this.closed) return;
    this.emit("status", { state: "connecting", attempt: this.attempt });
    let url;
    try {
      const credentials = await this.session.fresh();
      url = await presignedUrl(this.url, this.region, credentials);
    } catch (err) {
      this.emit("status", { state: "offline", error: String(err.message || err) });
      this.schedule();
      return;
    }
    if (this.closed) return;
    const client = mqtt.connect(url, {
      clientId: this.session.clientId,
      protocolVersion: 4,
      clean: true,
      keepalive: KEEPALIVE_S,
      reconnectPeriod: 0, // ours, with a freshly signed URL each time
      connectTimeout: CONNECT_TIMEOUT_MS,
      resubscribe: false,
      // mqtt.js would run its keep-alive timer in a Worker made from a blob: URL, which the
      // page's CSP (script-src 'self', no worker-src blob:) refuses; ours is a file.
      timerVariant: (intervals ||= new WorkerIntervals()),
    });
    this.client = client;
    client.on("connect", () => this.connectedWith(client));
    client.on("message", (topic, payload) => {
      let message;
      try {
        message = JSON.parse(new TextDecoder().decode(payload));
      } catch {
        return; // not ours to show
      }
      if (message && typeof message === "object" && !Array.isArray(message)) {
        this.emit("message", { topic, message });
      }
    });
    client.on("error", (err) => this.emit("status", { state: "error", error: String(err.message || err) }));
    client.on("close", () => this.lost(client));
  }

  async connectedWith(client) {
    if (client !== this.client) return;
    const topics = this.topics().slice(0, SUBSCRIPTIONS_PER_CONNECTION);
    const refused = [];
    for (const chunk of chunks(topics)) {
      try {
        const granted = await client.subscribeAsync(chunk, { qos: 1 });
        for (const g of granted) if (g.qos === 128) refused.push(g.topic);
      } catch (err) {
        if (client !== this.client) return; // the connection went meanwhile
        refused.push(...chunk);
      }
    }
    if (client !== this.client) return;
    if (refused.length) {
      this.emit("status", { state: "error", error: `not allowed to follow: ${refused.join(", ")}` });
    }
    const reconnect = this.attempt > 0 || this.wasConnected;
    this.attempt = 0;
    this.connected = true;
    this.wasConnected = true;
    this.emit("status", { state: "online" });
    this.emit("connected", { reconnect });
  }

  lost(client) {
    if (client !== this.client) return;
    client.removeAllListeners("close");
    client.end(true);
    this.client = null;
    const wasConnected = this.connected;
    this.connected = false;
    if (this.closed) return;
    if (wasConnected) this.emit("disconnected", {});
    this.schedule();
  }

  schedule() {
    if (this.closed || this.timer !== null) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.emit("status", { state: "offline", retryInMs: delay });
    this.timer = setTimeout(() => this.open(), delay);
  }

  // The browser says the network is back: do not wait out the backoff.
  retryNow() {
    if (this.closed || this.client !== null || this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.open();
  }

  subscribe(topic) {
    if (this.client && this.connected) this.client.subscribe(topic, { qos: 1 });
  }

  // Several topics, at most 8 filters per SUBSCRIBE, each chunk acknowledged before the next;
  // resolves to the topics refused (all of them when the connection went meanwhile).
  async subscribeMany(topics) {
    const client = this.client;
    const refused = [];
    for (const chunk of chunks(topics)) {
      if (!client || client !== this.client || !this.connected) return topics;
      try {
        const granted = await client.subscribeAsync(chunk, { qos: 1 });
        for (const g of granted) if (g.qos === 128) refused.push(g.topic);
      } catch {
        refused.push(...chunk);
      }
    }
    return refused;
  }

  async unsubscribeMany(topics) {
    const client = this.client;
    for (const chunk of chunks(topics)) {
      if (!client || client !== this.client || !this.connected) return;
      try {
        await client.unsubscribeAsync(chunk);
      } catch {
        return; // the connection went: the next connect subscribes from topics() again
      }
    }
  }

  // Whether anything published now can reach the backend (else the outbox keeps it).
  get online() {
    return Boolean(this.client && this.connected);
  }

  unsubscribe(topic) {
    if (this.client && this.connected) this.client.unsubscribe(topic);
  }

  // QoS 1 to chat/out or chat/stream; false if offline (the caller tells the user).
  publish(topic, body) {
    if (!this.client || !this.connected) return false;
    this.client.publish(topic, JSON.stringify({ v: 1, ...body }), { qos: 1 });
    return true;
  }

  close() {
    this.closed = true;
    window.removeEventListener("online", this.onOnline);
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.client) this.client.end(false);
    this.client = null;
  }
}
