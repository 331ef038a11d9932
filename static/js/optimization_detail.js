/*
 * The optimisation pages (templates/backtests/optimization_list.html, optimization_detail.html).
 *
 * Live progress: run_progress.js follows each optimisation's status (`optimization:<id>`,
 * docs/websocket.md: status, progress, done, pruned, failed, total, best_value, best_params). On
 * the detail page `#optimization-counts[data-optimization-id]` shows the trials done, skipped and
 * failed (its data-finished and data-total, which tests read, follow them), and
 * `#optimization-best-value` / `#optimization-best-params` the best so far; a list row its trials
 * and best value. The detail page reloads once the optimisation is over, so that the server
 * renders its results.
 *
 * Charts, from the page's json_script "optimization-data" (backtests/optimization_pages.py):
 * the history (each complete trial's value as a dot, grey when it made too few trades, and the
 * best so far as a step line, by trial number) with the vendored Lightweight Charts, whose time
 * axis carries the trial numbers; and the parallel coordinates (parallel_coordinates.js).
 * `#history-chart[data-points]` says how many trials are drawn.
 */
(() => {
  "use strict";

  /** A value as the page writes it: a percentage for a return, else 4 significant digits. */
  function formatter(kind) {
    if (kind === "percent") return (value) => `${(value * 100).toFixed(2)} %`;
    return (value) => String(Number(Number(value).toPrecision(4)));
  }

  function paramsText(params) {
    return Object.entries(params || {}).map(([name, value]) => `${name}=${value}`).join(", ");
  }

  function showDetail(id, data) {
    const counts = document.querySelector(
      `#optimization-counts[data-optimization-id="${CSS.escape(String(id))}"]`,
    );
    if (counts === null || !Number.isInteger(data.total)) return;
    counts.textContent = `${data.done} done, ${data.pruned} skipped, ${data.failed} failed, `
      + `of ${data.total} trials`;
    counts.dataset.finished = String(data.done + data.pruned + data.failed);
    counts.dataset.total = String(data.total);
    const format = formatter(counts.dataset.valueKind);
    const value = document.getElementById("optimization-best-value");
    const params = document.getElementById("optimization-best-params");
    if (value && data.best_value !== null && data.best_value !== undefined) {
      value.textContent = format(data.best_value);
    }
    if (params && data.best_params) params.textContent = paramsText(data.best_params);
  }

  function showRow(id, data) {
    const row = document.getElementById(`optimization-${id}`);
    if (row === null || !Number.isInteger(data.total)) return;
    const trials = row.querySelector('[data-role="trials"]');
    const best = row.querySelector('[data-role="best-value"]');
    if (trials) trials.textContent = `${data.done + data.pruned + data.failed} / ${data.total}`;
    if (best && data.best_value !== null && data.best_value !== undefined) {
      best.textContent = formatter(best.dataset.valueKind)(data.best_value);
    }
  }

  if (window.RunProgress) {
    window.RunProgress.watch("optimization", (id, data) => {
      showDetail(id, data);
      showRow(id, data);
    });
  }

  // --- charts -----------------------------------------------------------------------------------

  function cssColor(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function drawHistory(container, data) {
    const colors = {
      text: cssColor("--muted", "#8b96a3"), grid: cssColor("--line", "#2a323c"),
      link: cssColor("--link", "#58a6ff"), accent: cssColor("--accent", "#3fb68b"),
    };
    const format = formatter(data.value_kind);
    const trial = (time) => `#${time}`;
    const chart = window.LightweightCharts.createChart(container, {
      autoSize: true,
      layout: { background: { type: "solid", color: "transparent" }, textColor: colors.text },
      grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
      rightPriceScale: { borderColor: colors.grid },
      timeScale: { borderColor: colors.grid, tickMarkFormatter: trial, fixLeftEdge: true },
      localization: { timeFormatter: (time) => `Trial ${trial(time)}`, priceFormatter: format },
      handleScroll: { vertTouchDrag: false },
    });
    const priceFormat = { type: "custom", formatter: format };
    const dots = chart.addLineSeries({
      lineVisible: false, pointMarkersVisible: true, pointMarkersRadius: 3, color: colors.link,
      priceLineVisible: false, lastValueVisible: false, priceFormat,
    });
    dots.setData(data.history.map((row) => ({
      time: row.number, value: row.value, color: row.feasible ? colors.link : colors.text,
    })));
    const best = chart.addLineSeries({
      color: colors.accent, lineWidth: 2, lineType: 1, priceLineVisible: false, priceFormat,
    });
    best.setData(data.history.filter((row) => row.best !== null)
      .map((row) => ({ time: row.number, value: row.best })));
    chart.timeScale().fitContent();
    container.dataset.points = String(data.history.length);
  }

  function drawCharts() {
    const script = document.getElementById("optimization-data");
    if (script === null) return;
    const data = JSON.parse(script.textContent);
    const history = document.getElementById("history-chart");
    if (history && window.LightweightCharts && data.history.length) drawHistory(history, data);
    const parallel = document.getElementById("parallel-chart");
    if (parallel && window.ParallelCoordinates) {
      window.ParallelCoordinates.draw(parallel, data, formatter(data.value_kind));
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawCharts);
  else drawCharts();
})();
