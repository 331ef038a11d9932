/*
 * Equity curves drawn with the vendored Lightweight Charts (window.LightweightCharts), shared by
 * the dashboard (dashboard.js) and the bot page (bot_equity.js): window.EquityChart.
 *
 *   EquityChart.create(container, { drawdown })  an area chart sized to its container; times in
 *                                                 the trader's time zone (Format.zoned)
 *   EquityChart.points(rows, key)                API rows [{time: ms, <key>: "decimal"}] as the
 *                                                 chart's {time: s, value}, one per time, ascending
 *   EquityChart.sparkline(cell, rows)            a small SVG line of rows' equity in a table cell
 *
 * Both keep the number of points drawn in the container's data-points, which tests read.
 */
(() => {
  "use strict";

  if (!window.Format) return;
  const { zoned } = window.Format;
  const SVG = "http://www.w3.org/2000/svg";

  function cssColor(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  const clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  const formats = [
    // By Lightweight Charts' TickMarkType: Year, Month, DayOfMonth, Time, TimeWithSeconds.
    zoned({ year: "numeric" }), zoned({ month: "short" }), zoned({ day: "numeric", month: "short" }),
    zoned(clock), zoned({ ...clock, second: "2-digit" }),
  ];
  const crosshair = zoned({ year: "numeric", month: "2-digit", day: "2-digit", ...clock });
  const fromSeconds = (format) => (seconds) => format.format(new Date(seconds * 1000));

  function create(container, { drawdown = false } = {}) {
    const charts = window.LightweightCharts;
    const colors = {
      text: cssColor("--muted", "#8b96a3"), grid: cssColor("--line", "#2a323c"),
      link: cssColor("--link", "#58a6ff"), down: cssColor("--danger", "#e5534b"),
    };
    const chart = charts.createChart(container, {
      autoSize: true,
      layout: { background: { type: "solid", color: "transparent" }, textColor: colors.text },
      grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
      rightPriceScale: { borderColor: colors.grid },
      timeScale: {
        borderColor: colors.grid, timeVisible: true, secondsVisible: false,
        tickMarkFormatter: (time, type) => fromSeconds(formats[type] || crosshair)(time),
      },
      localization: { timeFormatter: fromSeconds(crosshair) },
      handleScroll: { vertTouchDrag: false }, // a vertical swipe scrolls the page on a phone
    });
    const series = chart.addAreaSeries(drawdown ? {
      lineColor: colors.down, topColor: "rgba(229, 83, 75, 0.35)",
      bottomColor: "rgba(229, 83, 75, 0.05)", lineWidth: 1, invertFilledArea: true,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    } : {
      lineColor: colors.link, topColor: "rgba(88, 166, 255, 0.3)",
      bottomColor: "rgba(88, 166, 255, 0)", lineWidth: 2,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    });
    return {
      chart,
      draw(points) {
        series.setData(points);
        container.dataset.points = String(points.length);
        chart.timeScale().fitContent();
      },
    };
  }

  function points(rows, key = "equity") {
    const byTime = new Map();
    for (const row of rows) byTime.set(Math.floor(row.time / 1000), Number(row[key]));
    return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
  }

  function sparkline(cell, rows) {
    const values = rows.map((row) => Number(row.equity));
    cell.replaceChildren();
    cell.dataset.points = String(values.length);
    if (values.length < 2) return;
    const width = 120;
    const height = 28;
    const low = Math.min(...values);
    const span = Math.max(...values) - low || 1;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", values.map((value, index) => {
      const x = (index / (values.length - 1)) * width;
      const y = height - 2 - ((value - low) / span) * (height - 4);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    }).join(" "));
    line.setAttribute("class", values[values.length - 1] < 0 ? "loss" : "gain");
    svg.append(line);
    cell.append(svg);
    cell.title = `Equity ${values[values.length - 1].toFixed(2)} (realised + unrealised PnL)`;
  }

  window.EquityChart = { create, points, sparkline };
})();
