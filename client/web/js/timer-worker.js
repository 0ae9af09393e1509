// Intervals for the MQTT keep-alive, run in a worker: a hidden tab's own timers may be
// throttled to one wake-up a minute, which would miss PINGREQs and let the gateway drop the
// connection (it waits keep-alive x 1.5). A same-origin worker file is allowed by the page's
// CSP (script-src 'self'), where mqtt.js's own blob: worker is not.

const intervals = new Map();

self.onmessage = (event) => {
  const { op, id, ms } = event.data || {};
  if (op === "set" && Number.isInteger(id) && ms > 0) {
    clearInterval(intervals.get(id));
    intervals.set(id, setInterval(() => self.postMessage(id), ms));
  } else if (op === "clear") {
    clearInterval(intervals.get(id));
    intervals.delete(id);
  }
};
