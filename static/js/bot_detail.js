/*
 * A bot's page (templates/bots/bot_detail.html), kept current through Live (live.js).
 *
 * It subscribes to bot:<id> (the id is this script tag's data-bot-id). Each bot.snapshot (on
 * every connect and reconnect) redraws the status, the tick times, position, open orders,
 * trades and events from the server's state; bot.status, bot.tick (last tick, last candle,
 * next tick), bot.position, bot.order, bot.trade and bot.event then change just their part.
 * Rows are drawn as the template draws them (Django's floatformat with the market's precision,
 * times in the trader's time zone, also the candle time a tick's log line starts with), and
 * text goes in as text, never as HTML. Trades are paged: only the first page (the newest) takes
 * new ones. "Close position now" shows while a position is open.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  const botId = script && script.dataset.botId;
  if (!window.Live || !window.Format || !botId) return;

  const channel = `bot:${botId}`;
  const RECENT_ROWS = 20; // as bots/views.py RECENT_ROWS
  const PRICE = Number(script.dataset.pricePlaces || 2);
  const QTY = Number(script.dataset.qtyPlaces || 8);

  const { floatformat, localTime, row } = window.Format;

  // --- the sections -----------------------------------------------------------------------------

  function section(id) {
    const element = document.getElementById(id);
    return {
      element,
      table: element.querySelector("table"),
      body: element.querySelector("tbody"),
      empty: element.querySelector(".empty"),
    };
  }

  function showRows(part) {
    const any = part.body.rows.length > 0;
    part.table.hidden = !any;
    part.empty.hidden = any;
  }

  function prepend(part, tr) {
    part.body.prepend(tr);
    while (part.body.rows.length > RECENT_ROWS) part.body.lastElementChild.remove();
    showRows(part);
  }

  function showStatus(data) {
    const badge = document.getElementById("bot-status");
    const status = String(data.status || "");
    // "state" is what to show: "degraded" for a running bot whose exchange keeps failing.
    const state = String(data.state || status);
    badge.className = `badge ${state}`;
    badge.textContent = state.charAt(0).toUpperCase() + state.slice(1);
    document.getElementById("bot-health").textContent = data.health_reason || "";
    document.getElementById("bot-health-row").hidden = data.health !== "degraded";
    const errorRow = document.getElementById("bot-error-row");
    document.getElementById("bot-error").textContent = data.last_error || "";
    errorRow.hidden = !data.last_error;
    // The forms the page was drawn with stay; those that no longer apply are disabled.
    const start = document.querySelector("#bot-start button");
    const stop = document.querySelector("#bot-stop button");
    if (start) start.disabled = status === "running" || status === "stopping";
    if (stop) stop.disabled = status === "stopped";
    if (status !== "running" && status !== "stopping") {
      document.getElementById("bot-next-tick-row").hidden = true; // not due: it does not tick
    }
  }

  /** Last tick, last candle and next tick (bot.tick, or a snapshot): every time the page shows
   *  for the bot's clock, in the trader's time zone as the template draws them. */
  function showTick(data) {
    const set = (id, ms, withSeconds) => {
      const cell = document.getElementById(id);
      if (cell && ms !== undefined) cell.textContent = ms === null ? "—" : localTime(ms, withSeconds);
    };
    set("bot-last-tick", data.last_tick_at, true);
    set("bot-last-candle", data.last_candle_ms, false);
    const next = document.getElementById("bot-next-tick");
    if (next && data.next_tick_at !== undefined) {
      next.textContent = data.next_tick_at === null ? "" : localTime(data.next_tick_at, true);
      document.getElementById("bot-next-tick-row").hidden = data.next_tick_at === null;
    }
  }

  function showPosition(data) {
    const part = section("bot-position");
    const cell = (name) => part.body.querySelector(`td.${name}`);
    const has = data !== null && data !== undefined;
    cell("position-qty").textContent = has ? `${floatformat(data.qty, QTY)} ${data.symbol}` : "";
    cell("entry-price").textContent = has ? floatformat(data.entry_price, PRICE) || "—" : "";
    cell("mark-price").textContent = has ? floatformat(data.mark_price, PRICE) || "—" : "";
    // A perp bot's page has these cells too; a spot bot's has none.
    const perp = {
      "position-side": () => (Number(data.qty) > 0 ? data.side : "flat"),
      "position-leverage": () => `${data.leverage}×`,
      "liquidation-price": () => floatformat(data.liquidation_price, PRICE) || "—",
      funding: () => floatformat(data.funding, 2),
    };
    for (const [name, text] of Object.entries(perp)) {
      const target = cell(name);
      if (target) target.textContent = has ? text() : "";
    }
    cell("realised-pnl").textContent = has ? floatformat(data.pnl, 2) : "";
    cell("unrealised-pnl").textContent = has ? floatformat(data.unrealized_pnl, 2) : "";
    part.table.hidden = !has;
    part.empty.hidden = has;
    const close = document.getElementById("bot-close-position");
    if (close) close.hidden = !(has && Number(data.qty) > 0);
  }

  // A tick's log line starts with its candle's open time in UTC (bots/services/outcomes.py).
  const CANDLE_PREFIX = /^Candle \d{4}-\d{2}-\d{2} \d{2}:\d{2}(?: UTC)?: /;

  function localMessage(data) {
    const message = String(data.message || "");
    const candle = data.data && data.data.candle_ms;
    if (!Number.isInteger(candle) || !CANDLE_PREFIX.test(message)) return message;
    return message.replace(CANDLE_PREFIX, `Candle ${localTime(candle, false)}: `);
  }

  function eventRow(data) {
    const cells = [localTime(data.time, true), data.level, data.kind, localMessage(data)];
    return row(cells, { "data-event-id": String(data.id) });
  }

  function addEvent(data) {
    const part = section("bot-events");
    if (part.body.querySelector(`tr[data-event-id="${CSS.escape(String(data.id))}"]`)) return;
    prepend(part, eventRow(data));
  }

  function tradeKey(data) {
    return [data.time, data.side, data.qty, data.price, data.fee, data.pnl].join("|");
  }

  function tradeRow(data) {
    const cells = [
      localTime(data.time, false), data.side, floatformat(data.qty, QTY),
      floatformat(data.price, PRICE),
      floatformat(data.fee, 4), floatformat(data.pnl, 2),
    ];
    return row(cells, { "data-trade-key": tradeKey(data) });
  }

  function addTrade(data) {
    const part = section("bot-trades");
    if (part.table.dataset.live !== "true") return; // an older page of trades
    // A trade made while the snapshot was read arrives in it and again as an event.
    const key = CSS.escape(tradeKey(data));
    if (part.body.querySelector(`tr[data-trade-key="${key}"]`)) return;
    prepend(part, tradeRow(data));
  }

  function orderRow(data, placed) {
    const cells = [
      placed, data.side, data.order_type,
      data.price === null ? "market" : floatformat(data.price, PRICE),
      floatformat(data.qty, QTY), floatformat(data.filled_qty, QTY), data.status, data.reason,
      data.client_order_id,
    ];
    return row(cells, { "data-order-id": data.client_order_id });
  }

  function orderRows(part) {
    return new Map([...part.body.rows].map((tr) => [tr.dataset.orderId, tr]));
  }

  /** An order's event carries no placing time: a known row keeps its own, a new one shows "—". */
  function showOrder(data) {
    const part = section("bot-open-orders");
    const existing = orderRows(part).get(data.client_order_id);
    if (data.status !== "open") {
      if (existing) existing.remove();
    } else if (existing) {
      existing.replaceWith(orderRow(data, existing.cells[0].textContent));
    } else {
      part.body.prepend(orderRow(data, "—"));
    }
    showRows(part);
  }

  function showSnapshot(data) {
    showStatus(data);
    showTick(data);
    showPosition(data.position);
    const orders = section("bot-open-orders");
    const placed = orderRows(orders);
    orders.body.replaceChildren(...(data.open_orders || []).map((order) => {
      const known = placed.get(order.client_order_id);
      return orderRow(order, known ? known.cells[0].textContent : "—");
    }));
    showRows(orders);
    // Snapshots list the most recent oldest first; the page shows them newest first.
    const trades = section("bot-trades");
    if (trades.table.dataset.live === "true") {
      trades.body.replaceChildren(...(data.recent_trades || []).map(tradeRow).reverse());
      showRows(trades);
    }
    const events = section("bot-events");
    events.body.replaceChildren(...(data.recent_events || []).map(eventRow).reverse());
    showRows(events);
  }

  // --- wiring -----------------------------------------------------------------------------------

  const forThisBot = (draw) => (message) => {
    if (message.channel === channel) draw(message.data || {});
  };
  window.Live.on("bot.snapshot", forThisBot(showSnapshot));
  window.Live.on("bot.status", forThisBot(showStatus));
  window.Live.on("bot.tick", forThisBot(showTick));
  window.Live.on("bot.position", (message) => {
    if (message.channel === channel) showPosition(message.data);
  });
  window.Live.on("bot.order", forThisBot(showOrder));
  window.Live.on("bot.trade", forThisBot(addTrade));
  window.Live.on("bot.event", forThisBot(addEvent));
  window.Live.subscribe(channel);
})();
