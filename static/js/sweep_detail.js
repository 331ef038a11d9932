/*
 * The sweep pages (templates/backtests/sweep_list.html, sweep_detail.html): live progress
 * through Live (live.js).
 *
 * Every `.run-status[data-run-kind="sweep"]` on the page (a status badge, and while the sweep is
 * queued or running a <progress> bar and its percentage) follows that sweep's `sweep.snapshot`
 * and `sweep.status` messages (docs/websocket.md: status, progress, done, failed, total); the
 * page subscribes to `sweep:<id>` for each active one, so every (re)connect brings a snapshot.
 * `#sweep-counts[data-sweep-id]` shows the combinations done and failed. A section marked
 * `data-reload-on-finish="sweep:<id>"` reloads the page once the sweep is over, so that the
 * server renders the final ranking and heat map.
 */
(() => {
  "use strict";

  const KIND = "sweep";
  const ACTIVE = new Set(["queued", "running"]);
  const LABELS = {
    queued: "Queued", running: "Running", done: "Done", failed: "Failed", cancelled: "Cancelled",
  };

  /** As the template's `percent` filter: a fraction with 2 decimals and " %". */
  function percent(fraction) {
    return `${(fraction * 100).toFixed(2)} %`;
  }

  function widgets(id) {
    return document.querySelectorAll(
      `.run-status[data-run-kind="${KIND}"][data-run-id="${CSS.escape(String(id))}"]`,
    );
  }

  function showCounts(id, data) {
    const counts = document.querySelector(`#sweep-counts[data-sweep-id="${CSS.escape(String(id))}"]`);
    if (counts === null || !Number.isInteger(data.total)) return;
    counts.textContent = `${data.done} done, ${data.failed} failed, of ${data.total}`;
  }

  function showStatus(id, data) {
    const status = String(data.status || "");
    const progress = Number(data.progress);
    const running = ACTIVE.has(status);
    widgets(id).forEach((widget) => {
      widget.dataset.status = status;
      const badge = widget.querySelector('[data-role="status"]');
      badge.className = `badge ${status}`;
      badge.textContent = LABELS[status] || status;
      const bar = widget.querySelector('[data-role="progress"]');
      const text = widget.querySelector('[data-role="percent"]');
      if (bar) {
        bar.hidden = !running;
        if (Number.isFinite(progress)) bar.value = progress;
      }
      if (text) {
        text.hidden = !running;
        if (Number.isFinite(progress)) text.textContent = percent(progress);
      }
    });
    showCounts(id, data);
    if (!running && document.querySelector(`[data-reload-on-finish="${KIND}:${id}"]`)) {
      reloadOnce();
    }
  }

  let reloading = false;
  function reloadOnce() {
    if (reloading) return;
    reloading = true;
    window.location.reload();
  }

  if (!window.Live) return;
  const draw = (message) => {
    if (message.id !== undefined && widgets(message.id).length) showStatus(message.id, message.data || {});
  };
  window.Live.on(`${KIND}.snapshot`, draw);
  window.Live.on(`${KIND}.status`, draw);
  document.querySelectorAll(`.run-status[data-run-kind="${KIND}"]`).forEach((widget) => {
    if (ACTIVE.has(widget.dataset.status)) window.Live.subscribe(`${KIND}:${widget.dataset.runId}`);
  });
})();
