/*
 * Live progress of backtests and sweeps (window.RunProgress), through Live (live.js).
 *
 *   RunProgress.watch(kind, onStatus)   kind is "backtest" or "sweep"
 *
 * Every `.run-status[data-run-kind="<kind>"]` on the page (a status badge, and while the run is
 * queued or running a <progress> bar and its percentage) follows that run's `<kind>.snapshot`
 * and `<kind>.status` messages (docs/websocket.md: status, progress, ...). The page subscribes to
 * `<kind>:<id>` for each active one, so every (re)connect brings a snapshot. `onStatus(id, data)`
 * is called after each message, for what else the page shows. A section marked
 * `data-reload-on-finish="<kind>:<id>"` reloads the page once that run is over (done, failed or
 * cancelled): the server then renders its results or its error.
 */
(() => {
  "use strict";

  const ACTIVE = new Set(["queued", "running"]);
  const LABELS = {
    queued: "Queued", running: "Running", done: "Done", failed: "Failed", cancelled: "Cancelled",
  };

  /** As the template's `percent` filter: a fraction with 2 decimals and " %". */
  function percent(fraction) {
    return `${(fraction * 100).toFixed(2)} %`;
  }

  function widgets(kind, id) {
    return document.querySelectorAll(
      `.run-status[data-run-kind="${kind}"][data-run-id="${CSS.escape(String(id))}"]`,
    );
  }

  function showPart(element, running, progress, draw) {
    if (!element) return;
    element.hidden = !running;
    if (Number.isFinite(progress)) draw(element, progress);
  }

  function showStatus(kind, id, data) {
    const status = String(data.status || "");
    const progress = Number(data.progress);
    const running = ACTIVE.has(status);
    widgets(kind, id).forEach((widget) => {
      widget.dataset.status = status;
      const badge = widget.querySelector('[data-role="status"]');
      badge.className = `badge ${status}`;
      badge.textContent = LABELS[status] || status;
      showPart(widget.querySelector('[data-role="progress"]'), running, progress,
        (bar, value) => { bar.value = value; });
      showPart(widget.querySelector('[data-role="percent"]'), running, progress,
        (text, value) => { text.textContent = percent(value); });
    });
    return running;
  }

  let reloading = false;
  function reloadOnce() {
    if (reloading) return;
    reloading = true;
    window.location.reload();
  }

  function watch(kind, onStatus) {
    if (!window.Live) return;
    const draw = (message) => {
      if (message.id === undefined || !widgets(kind, message.id).length) return;
      const data = message.data || {};
      const running = showStatus(kind, message.id, data);
      if (onStatus) onStatus(message.id, data);
      if (!running && document.querySelector(`[data-reload-on-finish="${kind}:${message.id}"]`)) {
        reloadOnce();
      }
    };
    window.Live.on(`${kind}.snapshot`, draw);
    window.Live.on(`${kind}.status`, draw);
    document.querySelectorAll(`.run-status[data-run-kind="${kind}"]`).forEach((widget) => {
      if (ACTIVE.has(widget.dataset.status)) window.Live.subscribe(`${kind}:${widget.dataset.runId}`);
    });
  }

  window.RunProgress = { watch };
})();
