/*
 * The sweep pages (templates/backtests/sweep_list.html, sweep_detail.html): live progress of
 * each sweep (run_progress.js), and on a sweep's page `#sweep-counts[data-sweep-id]`, the
 * combinations done and failed. The page reloads once the sweep is over, so that the server
 * renders the final ranking and heat map.
 */
(() => {
  "use strict";

  function showCounts(id, data) {
    const counts = document.querySelector(`#sweep-counts[data-sweep-id="${CSS.escape(String(id))}"]`);
    if (counts === null || !Number.isInteger(data.total)) return;
    counts.textContent = `${data.done} done, ${data.failed} failed, of ${data.total}`;
  }

  if (window.RunProgress) window.RunProgress.watch("sweep", showCounts);
})();
