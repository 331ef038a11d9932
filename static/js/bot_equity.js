/*
 * The bot page's equity and drawdown charts (templates/bots/_equity.html): drawn from
 * GET /api/bots/<id>/equity[?period=day|week|month] with EquityChart (equity_chart.js), and drawn
 * again, at most once a second, when the bot's position changes (every tick sends bot.position
 * on the bot:<id> channel, through Live). A replay's times are its replayed candles' closes.
 */
(() => {
  "use strict";

  const section = document.getElementById("bot-equity");
  if (!section || !window.Format || !window.EquityChart || !window.LightweightCharts) return;
  const url = section.dataset.equityUrl;
  const channel = `bot:${section.dataset.botId}`;
  const equity = window.EquityChart.create(document.getElementById("bot-equity-chart"));
  const drawdown = window.EquityChart.create(
    document.getElementById("bot-drawdown-chart"), { drawdown: true },
  );
  // Zooming or scrolling the equity moves the drawdown with it (the same times).
  equity.chart.timeScale().subscribeVisibleTimeRangeChange((range) => {
    try {
      if (range) drawdown.chart.timeScale().setVisibleRange(range);
    } catch (error) {
      // The drawdown has no data yet: it is drawn with the same times right after.
    }
  });
  let period = "";

  async function load() {
    const asked = period;
    const query = asked ? `?period=${asked}` : "";
    const response = await fetch(url + query, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!response.ok || asked !== period) return;
    const data = await response.json();
    // Drawn below zero: a drawdown is money below the peak.
    drawdown.draw(window.EquityChart.points(
      data.points.map((point) => ({ time: point.time, drawdown: -Number(point.drawdown) })),
      "drawdown",
    ));
    equity.draw(window.EquityChart.points(data.points, "equity"));
    document.getElementById("bot-max-drawdown").textContent =
      `${window.Format.floatformat(data.max_drawdown, 2)}`;
    document.getElementById("bot-equity-empty").hidden = data.points.length > 0;
  }

  section.querySelectorAll(".period-switch button").forEach((button) => {
    button.addEventListener("click", () => {
      period = button.dataset.period;
      section.querySelectorAll(".period-switch button").forEach((other) => {
        other.setAttribute("aria-pressed", String(other === button));
      });
      load().catch(() => {});
    });
  });

  let timer = null;
  function reloadSoon(message) {
    if (message.channel !== channel || timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      load().catch(() => {}); // offline: the next event tries again
    }, 1000);
  }
  if (window.Live) {
    window.Live.on("bot.position", reloadSoon);
    window.Live.on("bot.snapshot", reloadSoon);
    window.Live.subscribe(channel);
  }
  load().catch((error) => console.error("bot equity:", error));
})();
