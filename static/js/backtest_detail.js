/*
 * The backtest pages (templates/backtests/backtest_list.html, backtest_detail.html,
 * schedule_detail.html): live progress through Live (live.js), and a finished backtest's charts.
 *
 * Progress: run_progress.js, for every backtest on the page; the page reloads once the backtest
 * it shows is over, and the server renders its results or its error.
 *
 * Charts. A finished backtest's page embeds what its charts draw (json_script
 * "backtest-chart-data", built by backtests.selectors.backtest_chart): bars
 * [time_ms, open, high, low, close, volume], trade markers grouped per bar ({time, kind, side,
 * count, won}), the strategy's indicators ({key, label, pane, color, style, data:
 * [[time_ms, value], ...]}, strategies/plots.py), the equity curve and the drawdown
 * ([time_ms, value]). They are drawn with the vendored Lightweight Charts 4.2 (window.
 * LightweightCharts), sized to their containers (autoSize), times shown in the page's time zone
 * (data-time-zone).
 *
 * The price chart carries the volume (a histogram at its foot) and the indicators of the "price"
 * pane; those of the "lower" pane get a chart of their own under it, scrolled and zoomed with it.
 * Markers stay readable at any number of trades: markers closer than MARKER_MIN_PX are drawn as
 * one, with their count (×3), regrouped whenever the zoom changes (#chart-price's
 * data-marker-groups says how many bars a group spans, data-markers how many are drawn and
 * data-marked how many entries and exits they stand for).
 */
(() => {
  "use strict";

  const MARKER_TEXT_LIMIT = 60; // more markers than this are drawn without their labels
  const MARKER_MIN_PX = 18; // markers nearer than this (in pixels) are drawn as one
  const PALETTE = ["#58a6ff", "#f0b429", "#a371f7", "#3fb68b", "#e5534b", "#8b96a3"];

  // --- charts -----------------------------------------------------------------------------------

  function cssColor(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function timeFormatters(zone) {
    const make = (options) => {
      let format;
      try {
        format = new Intl.DateTimeFormat(undefined, { timeZone: zone, ...options });
      } catch (error) {
        format = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", ...options });
      }
      return (seconds) => format.format(new Date(seconds * 1000));
    };
    const clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    return {
      // By Lightweight Charts' TickMarkType: Year, Month, DayOfMonth, Time, TimeWithSeconds.
      ticks: [
        make({ year: "numeric" }),
        make({ month: "short" }),
        make({ day: "numeric", month: "short" }),
        make(clock),
        make({ ...clock, second: "2-digit" }),
      ],
      crosshair: make({ year: "numeric", month: "2-digit", day: "2-digit", ...clock }),
    };
  }

  function makeChart(id, colors, times) {
    return window.LightweightCharts.createChart(document.getElementById(id), {
      autoSize: true,
      layout: { background: { type: "solid", color: "transparent" }, textColor: colors.text },
      grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
      rightPriceScale: { borderColor: colors.grid },
      timeScale: {
        borderColor: colors.grid,
        timeVisible: true,
        secondsVisible: false,
        tickMarkFormatter: (time, type) => (times.ticks[type] || times.crosshair)(time),
      },
      localization: { timeFormatter: times.crosshair },
      // A vertical swipe over a chart scrolls the page on a phone.
      handleScroll: { vertTouchDrag: false },
    });
  }

  const seconds = (ms) => ms / 1000;

  /** One marker for a group of markers of one kind: entries of a side, or winning or losing
   *  exits. */
  function markerOf(group, colors, labelled) {
    const count = group.count > 1 ? `×${group.count}` : "";
    if (group.kind === "entry") {
      const long = group.side === "long";
      return {
        time: seconds(group.time),
        position: long ? "belowBar" : "aboveBar",
        shape: long ? "arrowUp" : "arrowDown",
        color: long ? colors.up : colors.down,
        text: count || (labelled ? (long ? "Buy" : "Sell") : ""),
      };
    }
    return {
      time: seconds(group.time),
      position: "aboveBar",
      shape: "circle",
      color: group.won ? colors.up : colors.down,
      text: count,
    };
  }

  /** The markers merged into groups of `span` bars (`index` maps a bar's time to its place). */
  function groupMarkers(markers, index, span) {
    const groups = new Map();
    for (const marker of markers) {
      const bucket = Math.floor((index.get(marker.time) || 0) / span);
      const kind = marker.kind === "entry" ? `entry-${marker.side}` : `exit-${marker.won}`;
      const key = `${bucket}|${kind}`;
      const group = groups.get(key);
      if (group) group.count += marker.count;
      else groups.set(key, { ...marker, count: marker.count });
    }
    return [...groups.values()].sort((a, b) => a.time - b.time);
  }

  function groupedMarkers(chart, series, data, colors) {
    const container = document.getElementById("chart-price");
    const index = new Map(data.candles.map(([time], place) => [time, place]));
    let span = 0;
    const regroup = () => {
      const range = chart.timeScale().getVisibleLogicalRange();
      const width = chart.timeScale().width();
      if (range === null || !width) return;
      const pixelsPerBar = width / Math.max(range.to - range.from, 1);
      const wanted = Math.max(1, Math.ceil(MARKER_MIN_PX / pixelsPerBar));
      if (wanted === span) return;
      span = wanted;
      const groups = groupMarkers(data.markers, index, span);
      const labelled = groups.length <= MARKER_TEXT_LIMIT;
      series.setMarkers(groups.map((group) => markerOf(group, colors, labelled)));
      container.dataset.markerGroups = String(span);
      container.dataset.markers = String(groups.length);
      container.dataset.marked = String(groups.reduce((sum, group) => sum + group.count, 0));
    };
    chart.timeScale().subscribeVisibleLogicalRangeChange(regroup);
    regroup();
  }

  function addVolume(chart, data) {
    const volume = chart.addHistogramSeries({
      priceScaleId: "volume", priceFormat: { type: "volume" },
      lastValueVisible: false, priceLineVisible: false,
    });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    volume.setData(data.candles.map(([time, open, , , close, amount]) => ({
      time: seconds(time), value: amount || 0,
      color: close >= open ? "rgba(63, 182, 139, 0.35)" : "rgba(229, 83, 75, 0.35)",
    })));
  }

  /** One indicator as a series of `chart`: a line (dashed for a level) or a histogram. */
  function addIndicator(chart, plot, color, colors, precision) {
    const common = {
      priceLineVisible: false, lastValueVisible: false, title: "",
      priceFormat: { type: "price", precision, minMove: 10 ** -precision },
    };
    if (plot.style === "histogram") {
      const series = chart.addHistogramSeries(common);
      series.setData(plot.data.map(([time, value]) => ({
        time: seconds(time), value,
        color: value >= 0 ? "rgba(63, 182, 139, 0.6)" : "rgba(229, 83, 75, 0.6)",
      })));
      return;
    }
    const series = chart.addLineSeries({
      ...common, color, lineWidth: plot.style === "dashed" ? 1 : 2,
      lineStyle: plot.style === "dashed"
        ? window.LightweightCharts.LineStyle.Dashed : window.LightweightCharts.LineStyle.Solid,
      crosshairMarkerVisible: plot.style !== "dashed",
    });
    series.setData(plot.data.map(([time, value]) => ({ time: seconds(time), value })));
  }

  function showLegend(plots, colorOf) {
    const legend = document.getElementById("chart-legend");
    if (legend === null || !plots.length) return;
    for (const plot of plots) {
      const item = document.createElement("li");
      item.dataset.plot = plot.key;
      item.dataset.pane = plot.pane;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      // A histogram is drawn green above zero and red below it.
      swatch.style.background = plot.style === "histogram"
        ? "linear-gradient(90deg, rgb(63 182 139) 50%, rgb(229 83 75) 50%)" : colorOf(plot);
      item.append(swatch, plot.pane === "lower" ? `${plot.label} (below)` : plot.label);
      legend.append(item);
    }
    legend.hidden = false;
  }

  /** The "lower" pane's indicators on a chart of their own, with a blank point on every bar so
   *  that its bars line up with the price chart's and the two scroll and zoom together. */
  function drawLowerPane(priceChart, data, plots, colorOf, colors, times) {
    const container = document.getElementById("chart-indicators");
    if (container === null || !plots.length) return;
    container.hidden = false;
    const chart = makeChart("chart-indicators", colors, times);
    const blank = chart.addLineSeries({ visible: false, priceLineVisible: false });
    blank.setData(data.candles.map(([time]) => ({ time: seconds(time) })));
    for (const plot of plots) addIndicator(chart, plot, colorOf(plot), colors, 4);
    container.dataset.series = String(plots.length);
    let syncing = false;
    const follow = (target) => (range) => {
      if (range === null || syncing) return;
      syncing = true;
      target.timeScale().setVisibleLogicalRange(range);
      syncing = false;
    };
    priceChart.timeScale().subscribeVisibleLogicalRangeChange(follow(chart));
    chart.timeScale().subscribeVisibleLogicalRangeChange(follow(priceChart));
    const shown = priceChart.timeScale().getVisibleLogicalRange();
    if (shown !== null) chart.timeScale().setVisibleLogicalRange(shown);
  }

  function drawIndicators(chart, data, colors, times, precision) {
    const plots = (data.indicators || []).filter((plot) => plot.data.length);
    const colorOf = (plot) => plot.color || PALETTE[plots.indexOf(plot) % PALETTE.length];
    const upper = plots.filter((plot) => plot.pane === "price");
    for (const plot of upper) addIndicator(chart, plot, colorOf(plot), colors, precision);
    document.getElementById("chart-price").dataset.series = String(upper.length);
    showLegend(plots, colorOf);
    drawLowerPane(chart, data, plots.filter((plot) => plot.pane === "lower"), colorOf, colors,
      times);
  }

  function drawPrice(data, colors, times) {
    const chart = makeChart("chart-price", colors, times);
    const options = {
      upColor: colors.up, downColor: colors.down, borderVisible: false,
      wickUpColor: colors.up, wickDownColor: colors.down,
    };
    const precision = Number.isInteger(data.priceDecimals) ? data.priceDecimals : 2;
    if (Number.isInteger(data.priceDecimals)) {
      options.priceFormat = {
        type: "price", precision: data.priceDecimals, minMove: 10 ** -data.priceDecimals,
      };
    }
    const series = chart.addCandlestickSeries(options);
    series.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.2 } });
    series.setData(data.candles.map(([time, open, high, low, close]) => (
      { time: seconds(time), open, high, low, close }
    )));
    addVolume(chart, data);
    chart.timeScale().fitContent();
    drawIndicators(chart, data, colors, times, precision);
    groupedMarkers(chart, series, data, colors);
  }

  function drawEquity(data, colors, times) {
    const chart = makeChart("chart-equity", colors, times);
    const curve = chart.addAreaSeries({
      lineColor: colors.link, topColor: "rgba(88, 166, 255, 0.3)",
      bottomColor: "rgba(88, 166, 255, 0)", lineWidth: 2,
      priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    });
    curve.setData(data.equity.map(([time, value]) => ({ time: seconds(time), value })));
    if (data.firstClose) {
      const hold = chart.addLineSeries({
        color: colors.text, lineWidth: 1, lineStyle: window.LightweightCharts.LineStyle.Dashed,
        priceLineVisible: false, lastValueVisible: false,
        priceFormat: { type: "price", precision: 2, minMove: 0.01 },
      });
      hold.setData(data.candles.map(([time, , , , close]) => ({
        time: seconds(time), value: Math.round(data.initialCash * close / data.firstClose * 100) / 100,
      })));
    }
    chart.timeScale().fitContent();
    return chart;
  }

  function drawDrawdown(data, colors, times) {
    const chart = makeChart("chart-drawdown", colors, times);
    const series = chart.addAreaSeries({
      lineColor: colors.down, topColor: "rgba(229, 83, 75, 0.35)",
      bottomColor: "rgba(229, 83, 75, 0.05)", lineWidth: 1, invertFilledArea: true,
      priceFormat: { type: "percent", precision: 2, minMove: 0.01 },
    });
    series.setData(data.drawdown.map(([time, value]) => ({ time: seconds(time), value })));
    chart.timeScale().fitContent();
    return chart;
  }

  function drawCharts() {
    const source = document.getElementById("backtest-chart-data");
    const section = document.getElementById("backtest-charts");
    if (source === null || section === null || !window.LightweightCharts) return;
    const data = JSON.parse(source.textContent);
    const colors = {
      text: cssColor("--muted", "#8b96a3"), grid: cssColor("--line", "#2a323c"),
      up: cssColor("--accent", "#3fb68b"), down: cssColor("--danger", "#e5534b"),
      link: cssColor("--link", "#58a6ff"),
    };
    const times = timeFormatters(section.dataset.timeZone || "UTC");
    drawPrice(data, colors, times);
    const equity = drawEquity(data, colors, times);
    const drawdown = drawDrawdown(data, colors, times);
    // Zooming or scrolling the equity curve moves the drawdown with it (same times).
    equity.timeScale().subscribeVisibleTimeRangeChange((range) => {
      if (range !== null) drawdown.timeScale().setVisibleRange(range);
    });
  }

  if (window.RunProgress) window.RunProgress.watch("backtest");
  drawCharts();
})();
