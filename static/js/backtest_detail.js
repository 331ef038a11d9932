/*
 * The backtest pages (templates/backtests/backtest_list.html, backtest_detail.html,
 * schedule_detail.html): live progress through Live (live.js), and a finished backtest's charts.
 *
 * Progress: run_progress.js, for every backtest on the page; the page reloads once the backtest
 * it shows is over, and the server renders its results or its error.
 *
 * Charts. A finished backtest's page embeds what its charts draw (json_script
 * "backtest-chart-data", built by backtests.selectors.backtest_chart): bars
 * [time_ms, open, high, low, close], trade markers, the equity curve and the drawdown
 * ([time_ms, value]). They are drawn with the vendored Lightweight Charts 4.2 (window.
 * LightweightCharts), sized to their containers (autoSize), times shown in the page's time zone
 * (data-time-zone).
 */
(() => {
  "use strict";

  const MARKER_TEXT_LIMIT = 60; // more markers than this are drawn without their labels

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

  function markerOf(marker, colors, labelled) {
    const long = marker.side === "long";
    if (marker.kind === "entry") {
      return {
        time: seconds(marker.time),
        position: long ? "belowBar" : "aboveBar",
        shape: long ? "arrowUp" : "arrowDown",
        color: long ? colors.up : colors.down,
        text: labelled ? marker.text : "",
      };
    }
    return {
      time: seconds(marker.time),
      position: long ? "aboveBar" : "belowBar",
      shape: "circle",
      color: marker.won ? colors.up : colors.down,
      text: "",
    };
  }

  function drawPrice(data, colors, times) {
    const chart = makeChart("chart-price", colors, times);
    const options = {
      upColor: colors.up, downColor: colors.down, borderVisible: false,
      wickUpColor: colors.up, wickDownColor: colors.down,
    };
    if (Number.isInteger(data.priceDecimals)) {
      options.priceFormat = {
        type: "price", precision: data.priceDecimals, minMove: 10 ** -data.priceDecimals,
      };
    }
    const series = chart.addCandlestickSeries(options);
    series.setData(data.candles.map(([time, open, high, low, close]) => (
      { time: seconds(time), open, high, low, close }
    )));
    const labelled = data.markers.length <= MARKER_TEXT_LIMIT;
    series.setMarkers(data.markers.map((marker) => markerOf(marker, colors, labelled)));
    chart.timeScale().fitContent();
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
