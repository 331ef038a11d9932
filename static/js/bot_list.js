/*
 * The bots list (templates/bots/bot_list.html), kept current through Live (live.js).
 *
 * It subscribes to each listed bot (bot:<id>, at most the server's 100 per connection): every
 * connect and reconnect brings a bot.snapshot with its status, position and last tick; then
 * bot.status, bot.position and bot.tick update the bot's row, and the row's Start or Stop form
 * shows as the status allows. Cells are drawn as the template draws them; text goes in as text.
 */
(() => {
  "use strict";

  if (!window.Live || !window.Format) return;
  const MAX_SUBSCRIPTIONS = 100; // the server's limit per connection
  const { floatformat, localTime } = window.Format;

  function rowOf(channel) {
    const id = String(channel || "").split(":")[1];
    return id ? document.getElementById(`bot-${id}`) : null;
  }

  function showStatus(tr, data) {
    if (data.status === undefined) return;
    const badge = tr.querySelector(".bot-status");
    const status = String(data.status || "");
    // "state" is what to show: "degraded" for a running bot whose exchange keeps failing.
    const state = String(data.state || status);
    badge.className = `badge ${state} bot-status`;
    badge.textContent = state.charAt(0).toUpperCase() + state.slice(1);
    badge.title = data.health_reason || "";
    tr.querySelector(".health-reason").textContent = data.health_reason || "";
    const active = status === "running" || status === "stopping";
    tr.querySelector("form.bot-start").hidden = active;
    tr.querySelector("form.bot-stop").hidden = !active;
  }

  function showPosition(tr, data) {
    const has = data !== null && data !== undefined;
    tr.querySelector(".position-qty").textContent = has ? floatformat(data.qty, -8) : "0";
    tr.querySelector(".realised-pnl").textContent = has ? floatformat(data.pnl, 2) : "—";
    tr.querySelector(".unrealised-pnl").textContent = has ? floatformat(data.unrealized_pnl, 2) : "—";
  }

  function showTick(tr, data) {
    if (data.last_tick_at === undefined) return;
    tr.querySelector(".last-tick").textContent =
      data.last_tick_at === null ? "—" : localTime(data.last_tick_at, true);
  }

  const onRow = (draw) => (message) => {
    const tr = rowOf(message.channel);
    if (tr) draw(tr, message.data || {});
  };
  window.Live.on("bot.snapshot", onRow((tr, data) => {
    showStatus(tr, data);
    showPosition(tr, data.position);
    showTick(tr, data);
  }));
  window.Live.on("bot.status", onRow(showStatus));
  window.Live.on("bot.position", (message) => {
    const tr = rowOf(message.channel);
    if (tr) showPosition(tr, message.data);
  });
  window.Live.on("bot.tick", onRow(showTick));
  const rows = [...document.querySelectorAll("#bots tbody tr[data-bot-id]")];
  for (const tr of rows.slice(0, MAX_SUBSCRIPTIONS)) window.Live.subscribe(`bot:${tr.dataset.botId}`);
})();
