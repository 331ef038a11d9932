/*
 * The trader's dashboard (templates/dashboard.html), kept current through Live (live.js).
 *
 * It subscribes to each listed bot (bot:<id>), so that every connect and reconnect brings a
 * bot.snapshot with the bot's status and position. Then bot.status and bot.position update the
 * bot's row, bot.trade and bot.event go on top of the recent lists, and a fill or a position
 * change (every tick sends one) redraws, at most once a second, everything else from the server:
 * the totals panel and the accounts table together (GET data-totals-url: one read, so the
 * accounts' equity and the header's never disagree), and the performance section (GET
 * data-performance-url: the total equity curve, the profit table of the chosen period and each
 * bot's sparkline). Text goes in as text, never as HTML; the panels are the server's own
 * templates.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  if (!window.Live || !window.Format || !script) return;
  const totalsUrl = script.dataset.totalsUrl;
  const performanceUrl = script.dataset.performanceUrl;
  const RECENT_ROWS = 20; // as tradingbot/site/dashboard.py RECENT
  const MAX_SUBSCRIPTIONS = 100; // the server's limit per connection

  const { floatformat, localTime, row } = window.Format;

  function botRow(channel) {
    const id = String(channel || "").split(":")[1];
    return id ? document.getElementById(`bot-${id}`) : null;
  }

  function showStatus(tr, data) {
    const badge = tr.querySelector(".bot-status");
    const status = String(data.status || "");
    // "state" is what to show: "degraded" for a running bot whose exchange keeps failing.
    const state = String(data.state || status);
    badge.className = `badge ${state} bot-status`;
    badge.textContent = state.charAt(0).toUpperCase() + state.slice(1);
    badge.title = data.health_reason || "";
    const active = status === "running" || status === "stopping";
    tr.querySelector("form.bot-start").hidden = active;
    tr.querySelector("form.bot-stop").hidden = !active;
  }

  function showPosition(tr, data) {
    const has = data !== null && data !== undefined;
    // As the template: floatformat "-8" and 2, a missing position as 0.
    tr.querySelector(".position-qty").textContent = floatformat(has ? data.qty : "0", -8);
    tr.querySelector(".realised-pnl").textContent = floatformat(has ? data.pnl : "0", 2);
    tr.querySelector(".unrealised-pnl").textContent = floatformat(
      has ? data.unrealized_pnl : "0", 2,
    );
  }

  function prepend(sectionId, cells, attributes = {}) {
    const section = document.getElementById(sectionId);
    const body = section.querySelector("tbody");
    body.prepend(row(cells, attributes));
    while (body.rows.length > RECENT_ROWS) body.lastElementChild.remove();
    section.querySelector("table").hidden = false;
    section.querySelector(".empty").hidden = true;
  }

  async function redrawPanels() {
    const response = await fetch(totalsUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    // Each top-level element of the answer replaces the page's element of the same id.
    for (const fresh of [...template.content.children]) {
      const current = fresh.id ? document.getElementById(fresh.id) : null;
      if (current) current.replaceWith(fresh);
    }
  }

  // --- performance: the total equity curve, the profit table, the sparklines ---------------------

  let period = "day";
  let equityChart = null;
  const PERIOD_FORMATS = {
    day: window.Format.zoned({ year: "numeric", month: "2-digit", day: "2-digit" }),
    week: window.Format.zoned({ year: "numeric", month: "2-digit", day: "2-digit" }),
    month: window.Format.zoned({ year: "numeric", month: "2-digit" }),
  };

  function periodLabel(ms) {
    const text = PERIOD_FORMATS[period].format(new Date(ms));
    return period === "week" ? `Week of ${text}` : text;
  }

  function drawTable(periods) {
    const table = document.getElementById("performance-table");
    const body = table.querySelector("tbody");
    body.replaceChildren(...periods.map((bucket) => {
      const rate = bucket.win_rate === null ? "—" : `${Math.round(bucket.win_rate * 100)}%`;
      const tr = row([periodLabel(bucket.start), floatformat(bucket.profit, 2),
                      String(bucket.trades), rate]);
      tr.children[1].className = Number(bucket.profit) < 0 ? "loss" : "gain";
      return tr;
    }));
    table.hidden = periods.length === 0;
    document.getElementById("performance-empty").hidden = periods.length > 0;
  }

  function drawEquity(samples) {
    const container = document.getElementById("equity-chart");
    document.getElementById("equity-empty").hidden = samples.length > 0;
    if (!window.LightweightCharts || !window.EquityChart) return;
    if (equityChart === null) equityChart = window.EquityChart.create(container);
    equityChart.draw(window.EquityChart.points(samples));
  }

  function drawSparklines(bots) {
    for (const bot of bots) {
      const cell = document.querySelector(`#bot-${bot.id} .sparkline`);
      if (cell && window.EquityChart) window.EquityChart.sparkline(cell, bot.equity);
    }
  }

  async function loadPerformance() {
    if (!performanceUrl) return;
    const asked = period;
    const response = await fetch(`${performanceUrl}?period=${asked}`, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!response.ok || asked !== period) return;
    const data = await response.json();
    drawTable(data.periods);
    drawEquity(data.equity);
    drawSparklines(data.bots);
  }

  document.querySelectorAll(".period-switch button[data-period]").forEach((button) => {
    button.addEventListener("click", () => {
      period = button.dataset.period;
      document.querySelectorAll(".period-switch button").forEach((other) => {
        other.setAttribute("aria-pressed", String(other === button));
      });
      loadPerformance().catch(() => {});
    });
  });

  let refreshTimer = null;
  function refreshTotals() {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      // Offline: the next event (or reconnect) tries again.
      if (totalsUrl) redrawPanels().catch(() => {});
      loadPerformance().catch(() => {});
    }, 1000);
  }

  const onRow = (draw) => (message) => {
    const tr = botRow(message.channel);
    if (tr) draw(tr, message.data);
  };
  window.Live.on("bot.snapshot", onRow((tr, data) => {
    showStatus(tr, data);
    showPosition(tr, data.position);
    refreshTotals();
  }));
  window.Live.on("bot.status", onRow(showStatus));
  window.Live.on("bot.position", onRow((tr, data) => {
    showPosition(tr, data);
    refreshTotals();
  }));
  window.Live.on("bot.trade", onRow((tr, data) => {
    prepend("dashboard-trades", [
      localTime(data.time, false), tr.dataset.botName, data.side, floatformat(data.qty, -8),
      floatformat(data.price, -2), floatformat(data.pnl, 2),
    ]);
    refreshTotals();
  }));
  window.Live.on("bot.event", onRow((tr, data) => {
    const id = String(data.id);
    if (document.querySelector(`#dashboard-events tr[data-event-id="${CSS.escape(id)}"]`)) return;
    prepend("dashboard-events",
      [localTime(data.time, true), tr.dataset.botName, data.level, data.message],
      { "data-event-id": id });
  }));
  document.querySelectorAll("#bots tr[data-bot-id]").forEach((tr, index) => {
    if (index < MAX_SUBSCRIPTIONS) window.Live.subscribe(`bot:${tr.dataset.botId}`);
  });
  loadPerformance().catch(() => {});
})();
