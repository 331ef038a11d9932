/*
 * A bot's candlestick chart (templates/bots/bot_detail.html), drawn with the vendored
 * Lightweight Charts and kept current through Live (live.js).
 *
 * The page embeds the most recent candles, the bot's fills among them and the open position's
 * entry price and (a perp's) liquidation price (json_script "bot-chart-data", from
 * bots.selectors.bot_chart). Then:
 * - bot.candle (each candle a tick acted on) adds or updates a candle;
 * - bot.trade adds an entry (buy) or exit (sell) marker on its candle; dense fills are grouped
 *   (chart_markers.js), regrouped as the trader zooms, so markers never pile up;
 * - bot.position moves the entry-price and liquidation lines, or removes them when flat.
 * The strategy's indicators ({key, label, pane, color, style, data}, strategies.plots) are drawn
 * over the candles ("price" pane) or in a band at the chart's foot ("lower" pane, a scale of its
 * own); as candles close the page reads them again from GET /api/bots/<id>/chart, at most once
 * a second, since only the server runs the strategy.
 * Times are shown in the trader's time zone (format.js).
 */
(() => {
  "use strict";

  const script = document.currentScript;
  const botId = script && script.dataset.botId;
  const container = document.getElementById("bot-chart");
  const source = document.getElementById("bot-chart-data");
  if (!window.Live || !window.Format || !window.LightweightCharts || !window.ChartMarkers
      || !container || !source || !botId) return;

  const channel = `bot:${botId}`;
  const initial = JSON.parse(source.textContent);
  const step = initial.timeframe_ms;
  const places = Number(container.dataset.pricePlaces || 2);
  const MAX_CANDLES = 1000; // the chart keeps at most this many; older ones scroll off
  const { localTime, zoned } = window.Format;
  const dayOnly = zoned({ month: "2-digit", day: "2-digit" });
  const timeOnly = zoned({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const { TickMarkType } = window.LightweightCharts;

  const chart = window.LightweightCharts.createChart(container, {
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: "#8b96a3" },
    grid: { vertLines: { color: "#2a323c" }, horzLines: { color: "#2a323c" } },
    timeScale: {
      timeVisible: true,
      secondsVisible: false,
      tickMarkFormatter: (time, type) => {
        const date = new Date(time * 1000);
        return type <= TickMarkType.DayOfMonth ? dayOnly.format(date) : timeOnly.format(date);
      },
    },
    localization: {
      timeFormatter: (time) => localTime(time * 1000, false),
      priceFormatter: (price) => price.toFixed(places),
    },
  });
  const series = chart.addCandlestickSeries({
    priceFormat: { type: "price", precision: places, minMove: 1 / 10 ** places },
  });

  const seconds = (ms) => Math.floor(ms / 1000);
  const bar = ([time, open, high, low, close]) => ({ time: seconds(time), open, high, low, close });
  let bars = initial.candles.map(bar);
  let fills = []; // {time (s, its candle's open), side, price}
  let grouping = 0; // candles a marker stands for, as last drawn
  let entryLine = null;
  let liquidationLine = null;

  function fillOf(fill) {
    const time = seconds(Math.floor(fill.time / step) * step);
    return { time, side: fill.side === "buy" ? "buy" : "sell", price: Number(fill.price) };
  }

  function visibleBars() {
    const range = chart.timeScale().getVisibleLogicalRange();
    return range ? range.to - range.from : bars.length;
  }

  function showMarkers() {
    const first = bars.length ? bars[0].time : 0;
    fills = fills.filter((f) => f.time >= first);
    grouping = window.ChartMarkers.barsPerGroup(visibleBars());
    const markers = window.ChartMarkers.group(fills, {
      barSeconds: seconds(step), barsPerGroup: grouping, places,
    });
    series.setMarkers(markers);
    container.dataset.markers = String(fills.length);
    container.dataset.markerGroups = String(markers.length);
    container.dataset.markerGrouping = String(grouping);
  }

  function showEntry(price) {
    if (entryLine) series.removePriceLine(entryLine);
    entryLine = null;
    if (price !== null && price !== undefined && price !== "") {
      entryLine = series.createPriceLine({
        price: Number(price), color: "#2962ff", lineWidth: 1, lineStyle: 2, title: "entry",
      });
    }
    container.dataset.entry = entryLine ? Number(price).toFixed(places) : "";
  }

  // A perp position's liquidation price, as a red line (none when flat, or on spot).
  function showLiquidation(price) {
    if (liquidationLine) series.removePriceLine(liquidationLine);
    liquidationLine = null;
    if (price !== null && price !== undefined && price !== "") {
      liquidationLine = series.createPriceLine({
        price: Number(price), color: "#b3261e", lineWidth: 1, lineStyle: 0, title: "liquidation",
      });
    }
    container.dataset.liquidation = liquidationLine ? Number(price).toFixed(places) : "";
  }

  function showPosition(position) {
    const open = position && Number(position.qty) > 0;
    showEntry(open ? position.entry_price : null);
    showLiquidation(open ? position.liquidation_price : null);
  }

  function addCandle(data) {
    if (!Array.isArray(data.candle)) return;
    const next = bar(data.candle);
    const last = bars.length ? bars[bars.length - 1] : null;
    if (last && next.time < last.time) return; // an old candle: the chart only moves forward
    series.update(next);
    if (last && next.time === last.time) bars[bars.length - 1] = next;
    else bars.push(next);
    if (bars.length > MAX_CANDLES) {
      bars = bars.slice(-MAX_CANDLES);
      series.setData(bars);
    }
    container.dataset.candles = String(bars.length);
    document.querySelector("#bot-chart-card .empty").hidden = true;
  }

  // --- the strategy's indicators ---------------------------------------------------------
  const PALETTE = ["#58a6ff", "#f0b429", "#a371f7", "#3fb68b", "#e5534b", "#8b96a3"];
  const indicatorSeries = new Map(); // plot key -> its series
  let refreshTimer = null;

  function pointsOf(plot) {
    return plot.data.map(([time, value]) => plot.style === "histogram"
      ? { time: seconds(time), value, color: value >= 0 ? "rgba(63,182,139,0.6)" : "rgba(229,83,75,0.6)" }
      : { time: seconds(time), value });
  }

  function addIndicator(plot, index) {
    const lower = plot.pane === "lower";
    const options = {
      priceLineVisible: false, lastValueVisible: false, title: plot.label,
      priceScaleId: lower ? "lower" : "right",
      priceFormat: lower ? { type: "price", precision: 2, minMove: 0.01 }
        : { type: "price", precision: places, minMove: 1 / 10 ** places },
    };
    const made = plot.style === "histogram" ? chart.addHistogramSeries(options)
      : chart.addLineSeries({
        ...options, color: plot.color || PALETTE[index % PALETTE.length],
        lineWidth: plot.style === "dashed" ? 1 : 2,
        lineStyle: plot.style === "dashed" ? 2 : 0,
      });
    indicatorSeries.set(plot.key, made);
    return made;
  }

  function showLegend(plots) {
    const legend = document.getElementById("bot-chart-legend");
    if (legend === null || !plots.length) return;
    legend.replaceChildren(...plots.map((plot, index) => {
      const item = document.createElement("li");
      item.dataset.plot = plot.key;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = plot.style === "histogram"
        ? "linear-gradient(90deg, rgb(63 182 139) 50%, rgb(229 83 75) 50%)"
        : plot.color || PALETTE[index % PALETTE.length];
      item.append(swatch, plot.pane === "lower" ? `${plot.label} (below)` : plot.label);
      return item;
    }));
    legend.hidden = false;
  }

  function showIndicators(plots) {
    if (!indicatorSeries.size) showLegend(plots || []);
    (plots || []).forEach((plot, index) => {
      (indicatorSeries.get(plot.key) || addIndicator(plot, index)).setData(pointsOf(plot));
    });
    if ((plots || []).some((plot) => plot.pane === "lower")) {
      // The lower band takes the chart's bottom quarter, the candles the rest.
      series.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.3 } });
      chart.priceScale("lower").applyOptions({ scaleMargins: { top: 0.75, bottom: 0 } });
    }
    container.dataset.indicators = String(indicatorSeries.size);
    const lasts = (plots || []).filter((plot) => plot.data.length)
      .map((plot) => plot.data[plot.data.length - 1][0]);
    container.dataset.indicatorsUntil = lasts.length ? String(Math.max(...lasts)) : "";
  }

  function refreshIndicators() {
    if (refreshTimer !== null || !indicatorSeries.size) return;
    refreshTimer = setTimeout(async () => {
      try {
        const response = await fetch(`/api/bots/${botId}/chart`, { credentials: "same-origin" });
        if (response.ok) showIndicators((await response.json()).indicators);
      } catch (error) {
        // The next closed candle tries again; the candles themselves keep coming live.
      } finally {
        refreshTimer = null;
      }
    }, 1000);
  }

  series.setData(bars);
  showIndicators(initial.indicators);
  fills = initial.markers.map(fillOf);
  showMarkers();
  // Zooming out puts more candles in view: regroup when a marker must stand for more of them.
  chart.timeScale().subscribeVisibleLogicalRangeChange(() => {
    if (window.ChartMarkers.barsPerGroup(visibleBars()) !== grouping) showMarkers();
  });
  showEntry(initial.entry_price);
  showLiquidation(initial.liquidation_price);
  container.dataset.candles = String(bars.length);

  const forThisBot = (draw) => (message) => {
    if (message.channel === channel) draw(message.data || {});
  };
  window.Live.on("bot.candle", forThisBot((data) => {
    addCandle(data);
    refreshIndicators();
  }));
  window.Live.on("bot.trade", forThisBot((fill) => {
    fills.push(fillOf(fill));
    showMarkers();
  }));
  window.Live.on("bot.position", (message) => {
    if (message.channel === channel) showPosition(message.data);
  });
  window.Live.on("bot.snapshot", forThisBot((snapshot) => showPosition(snapshot.position)));
  window.Live.subscribe(channel);
})();
