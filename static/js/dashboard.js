/*
 * The trader's dashboard (templates/dashboard.html), kept current through Live (live.js).
 *
 * It subscribes to each listed bot (bot:<id>), so that every connect and reconnect brings a
 * bot.snapshot with the bot's status and position. Then bot.status and bot.position update the
 * bot's row, bot.trade and bot.event go on top of the recent lists, and a fill or a position
 * change redraws the totals panel from the server (GET data-totals-url, at most once a second).
 * Text goes in as text, never as HTML; the totals panel is the server's own template.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  if (!window.Live || !window.Format || !script) return;
  const totalsUrl = script.dataset.totalsUrl;
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

  let totalsTimer = null;
  function refreshTotals() {
    if (totalsTimer !== null || !totalsUrl) return;
    totalsTimer = setTimeout(async () => {
      totalsTimer = null;
      try {
        const response = await fetch(totalsUrl, { credentials: "same-origin" });
        if (!response.ok) return;
        const html = await response.text();
        const panel = document.getElementById("totals");
        const template = document.createElement("template");
        template.innerHTML = html.trim();
        const fresh = template.content.firstElementChild;
        if (panel && fresh && fresh.id === "totals") panel.replaceWith(fresh);
      } catch (error) {
        // Offline: the next event (or reconnect) tries again.
      }
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
})();
