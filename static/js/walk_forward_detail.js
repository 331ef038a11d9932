/*
 * The walk-forward pages (templates/backtests/walk_forward_list.html, walk_forward_detail.html):
 * live progress of each walk-forward (run_progress.js, `walk_forward.status`: windows done and
 * trials finished, written into `#walk-forward-counts[data-walk-forward-id]`); the page reloads
 * once the walk-forward it shows is over, so that the server renders its windows and result.
 *
 * A finished walk-forward's page embeds its stitched out-of-sample equity (json_script
 * "walk-forward-equity-data", [[time_ms, equity], ...]), drawn in #walk-forward-equity with
 * equity_chart.js.
 */
(() => {
  "use strict";

  function showCounts(id, data) {
    const counts = document.querySelector(
      `#walk-forward-counts[data-walk-forward-id="${CSS.escape(String(id))}"]`,
    );
    if (counts === null || !Number.isInteger(data.windows)) return;
    counts.textContent = `${data.windows_done} of ${data.windows} windows done, `
      + `${data.trials_finished} of ${data.trials} trials finished`;
  }

  function drawEquity() {
    const container = document.getElementById("walk-forward-equity");
    const source = document.getElementById("walk-forward-equity-data");
    if (!container || !source || !window.EquityChart || !window.LightweightCharts) return;
    const rows = JSON.parse(source.textContent).map(([time, equity]) => ({ time, equity }));
    window.EquityChart.create(container).draw(window.EquityChart.points(rows));
  }

  if (window.RunProgress) window.RunProgress.watch("walk_forward", showCounts);
  drawEquity();
})();
