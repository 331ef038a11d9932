/*
 * Live: the pages' one WebSocket, to the live-updates endpoint /ws/ (docs/websocket.md).
 *
 *   Live.on(type, handler)   handler(message) for each server message of `type` ("bot.status",
 *                            "bot.snapshot", ...; "*" for every message). Returns a function
 *                            that removes the handler.
 *   Live.subscribe(channel)  "bot:<id>", "backtest:<id>", ...; remembered, and sent again after
 *   Live.unsubscribe(channel) every reconnect, whose fresh snapshot brings the page up to date.
 *   Live.onState(handler)    handler(state, detail) on connecting / live / reconnecting / offline.
 *   Live.configure({pingMs, backoffBaseMs, backoffCapMs})  (also <body data-live-ping-ms="...">)
 *   Live.reconnect()         drop the connection and connect again now.
 *   Live.state, Live.stats   the state and counters (attempts, connections, pings, pongs,
 *                            received per type, handlerErrors, lastClose), for the indicator's
 *                            tooltip and for tests.
 *
 * The session cookie authenticates the socket: the server answers {"type": "auth.ok"} at once.
 * The connection counts as made only then, not when the socket opens, so a server that accepts
 * and closes at once (4503 while Redis is down) is retried with a growing delay, not in a loop.
 *
 * Reconnecting: after a lost connection the delay is a random time in [0, min(cap, base * 2^n))
 * ("full jitter": after a restart, clients come back spread out, not together); n counts the
 * attempts since the last good connection, so it starts from 1 s again once one succeeds.
 *
 * Close code 4401 (unauthenticated: the user logged out in another tab, or the session expired)
 * ends the retries: the same cookie would be refused again and again. The indicator shows
 * "Offline"; the page tries once more only when it becomes visible again (the user may have
 * logged in meanwhile in another tab), so each new attempt needs the user to come back to it.
 *
 * The only timer that runs while connected is the ping. A connection that hears nothing for two
 * ping intervals (at least 20 s) is taken as dead and replaced: a browser may not notice by
 * itself that the network under a socket has gone.
 */
(() => {
  "use strict";

  const CLOSE_UNAUTHENTICATED = 4401;
  const CLOSE_SILENT = 4000; // our own code, when the server stopped answering pings
  const MIN_SILENCE_MS = 20000;
  const DROPPED_CHANNEL_ERRORS = new Set(["not_found", "invalid_channel", "unknown_symbol"]);
  const LABELS = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    offline: "Offline",
  };

  const config = { pingMs: 25000, backoffBaseMs: 1000, backoffCapMs: 30000 };
  const handlers = new Map(); // message type -> Set of handlers
  const stateHandlers = new Set();
  const channels = new Set();
  const stats = {
    attempts: 0, connections: 0, pings: 0, pongs: 0, received: {}, handlerErrors: 0,
    lastClose: null,
  };

  let socket = null;
  let state = "idle";
  let failures = 0; // attempts since the last good connection
  let retryTimer = null;
  let pingTimer = null;
  let lastHeard = 0;
  let signedOut = false;

  // --- the connection ---------------------------------------------------------------------------

  function endpoint() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/ws/`;
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (socket !== null) return;
    stats.attempts += 1;
    setState(stats.connections === 0 && failures === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(endpoint());
    socket = ws;
    ws.onopen = () => {
      lastHeard = Date.now();
      startPing();
    };
    ws.onmessage = (event) => received(ws, event.data);
    ws.onclose = (event) => closed(ws, event.code, event.reason);
  }

  function received(ws, text) {
    if (ws !== socket) return;
    lastHeard = Date.now();
    let message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      return; // the server sends only JSON; nothing a page could act on
    }
    if (message === null || typeof message !== "object") return;
    const type = String(message.type);
    stats.received[type] = (stats.received[type] || 0) + 1;
    if (type === "auth.ok") {
      connected();
    } else if (type === "pong") {
      stats.pongs += 1;
    } else if (type === "error" && DROPPED_CHANNEL_ERRORS.has(message.code)) {
      channels.delete(message.channel); // gone or never valid: asking again cannot help
    }
    dispatch(type, message);
  }

  function connected() {
    failures = 0;
    signedOut = false;
    stats.connections += 1;
    setState("live");
    channels.forEach((channel) => send({ type: "subscribe", channel }));
  }

  function closed(ws, code, reason) {
    if (ws !== socket) return;
    socket = null;
    stopPing();
    stats.lastClose = { code, reason };
    if (code === CLOSE_UNAUTHENTICATED) {
      signedOut = true;
      setState("offline", { reason: "signed out: log in again for live updates" });
    } else if (!navigator.onLine) {
      setState("offline", { reason: "no network" });
    } else {
      retryLater();
    }
  }

  function retryLater() {
    const ceiling = Math.min(config.backoffCapMs, config.backoffBaseMs * 2 ** failures);
    const delay = Math.random() * ceiling;
    failures += 1;
    retryTimer = setTimeout(connect, delay);
    setState("reconnecting", { retryAt: Date.now() + delay });
  }

  /** Close our side now, without waiting for the close event (a dead network may delay it). */
  function release(code, reason) {
    const ws = socket;
    if (ws === null) return;
    socket = null;
    stopPing();
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.close(code, reason);
    stats.lastClose = { code, reason };
  }

  function send(message) {
    if (socket === null || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  // --- the ping ---------------------------------------------------------------------------------

  function startPing() {
    stopPing();
    pingTimer = setInterval(ping, config.pingMs);
  }

  function stopPing() {
    clearInterval(pingTimer);
    pingTimer = null;
  }

  function ping() {
    if (Date.now() - lastHeard > Math.max(2 * config.pingMs, MIN_SILENCE_MS)) {
      release(CLOSE_SILENT, "no answer to pings");
      retryLater();
    } else if (send({ type: "ping" })) {
      stats.pings += 1;
    }
  }

  // --- handlers ---------------------------------------------------------------------------------

  function dispatch(type, message) {
    for (const key of [type, "*"]) {
      for (const handler of [...(handlers.get(key) || [])]) {
        try {
          handler(message);
        } catch (error) {
          stats.handlerErrors += 1;
          // Reported as an uncaught error would be, and the other handlers still run.
          (window.reportError || console.error)(error);
        }
      }
    }
  }

  function on(type, handler) {
    if (!handlers.has(type)) handlers.set(type, new Set());
    handlers.get(type).add(handler);
    return () => handlers.get(type).delete(handler);
  }

  function onState(handler) {
    stateHandlers.add(handler);
    return () => stateHandlers.delete(handler);
  }

  function subscribe(channel) {
    if (channels.has(channel)) return;
    channels.add(channel);
    if (state === "live") send({ type: "subscribe", channel });
  }

  function unsubscribe(channel) {
    if (channels.delete(channel) && state === "live") send({ type: "unsubscribe", channel });
  }

  // --- the indicator ----------------------------------------------------------------------------

  function setState(next, detail = {}) {
    state = next;
    showState(next, detail);
    stateHandlers.forEach((handler) => {
      try {
        handler(next, detail);
      } catch (error) {
        (window.reportError || console.error)(error);
      }
    });
  }

  function showState(next, detail) {
    const indicator = document.getElementById("live-status");
    if (indicator === null) return;
    let text = LABELS[next];
    let title = "Live updates";
    if (detail.retryAt !== undefined) {
      const seconds = Math.max(1, Math.ceil((detail.retryAt - Date.now()) / 1000));
      text = `Reconnecting in ${seconds} s`;
      title = `Connection lost; next attempt at ${new Date(detail.retryAt).toLocaleTimeString()}`;
      indicator.dataset.retryAt = String(Math.round(detail.retryAt));
    } else {
      delete indicator.dataset.retryAt;
    }
    if (detail.reason) title = `Offline: ${detail.reason}`;
    indicator.dataset.state = next;
    indicator.textContent = text;
    indicator.title = title;
  }

  // --- settings and the browser's own signals ---------------------------------------------------

  function configure(options) {
    for (const key of Object.keys(config)) {
      const value = Number(options[key]);
      if (key in options && Number.isFinite(value) && value > 0) config[key] = value;
    }
    if (pingTimer !== null) startPing();
  }

  function reconnect() {
    release(1000, "reconnecting");
    failures = 0;
    connect();
  }

  function start() {
    const pingMs = document.body && document.body.dataset.livePingMs;
    if (pingMs) configure({ pingMs });
    window.addEventListener("online", () => {
      if (state === "offline" && !signedOut) reconnect();
    });
    window.addEventListener("offline", () => {
      clearTimeout(retryTimer);
      release(1000, "offline");
      setState("offline", { reason: "no network" });
    });
    document.addEventListener("visibilitychange", () => {
      if (signedOut && state === "offline" && document.visibilityState === "visible") {
        connect();
      }
    });
    connect();
  }

  window.Live = {
    on, onState, subscribe, unsubscribe, configure, reconnect, stats,
    get state() {
      return state;
    },
  };
  start();
})();
