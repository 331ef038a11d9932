/*
 * Trade markers that stay readable at any number of trades (window.ChartMarkers), for the
 * Lightweight Charts candlestick charts (the bot's page; any chart of fills may use it).
 *
 *   ChartMarkers.barsPerGroup(visibleBars)   how many candles one group stands for, so that
 *                                            at most MAX_GROUPS groups fit the visible range
 *   ChartMarkers.group(fills, options)       the markers for series.setMarkers, oldest first
 *
 * A fill is {time, side, price}: `time` in the chart's seconds (the open of its candle), side
 * "buy" or "sell". Fills are grouped by runs of `barsPerGroup` candles (aligned on the candle
 * `barSeconds` apart, so a group never moves as the chart scrolls): each group has at most one
 * buy marker (below the bars) and one sell marker (above), at the group's first fill of that
 * side. A single fill reads "Buy 123.45"; a group "3 buys, avg 123.40". When markers are dense
 * (more than TEXT_GROUPS markers on the chart) they carry no text, only their arrows; a group of several
 * fills is drawn as a circle, so a trader sees that it stands for more than one.
 */
(() => {
  "use strict";

  const MAX_GROUPS = 40; // groups in view: up to two markers each fit a chart's width
  const TEXT_GROUPS = 16; // beyond this many markers, they drop their text
  const BUY = "#1b7f3b";
  const SELL = "#b3261e";

  function barsPerGroup(visibleBars) {
    const bars = Math.max(1, Math.ceil(Number(visibleBars) || 1));
    return Math.max(1, Math.ceil(bars / MAX_GROUPS));
  }

  function label(side, fills, places) {
    const word = side === "buy" ? "Buy" : "Sell";
    if (fills.length === 1) return `${word} ${Number(fills[0].price).toFixed(places)}`;
    const average = fills.reduce((sum, fill) => sum + Number(fill.price), 0) / fills.length;
    return `${fills.length} ${word.toLowerCase()}s, avg ${average.toFixed(places)}`;
  }

  /** options: barSeconds (the candle length in the chart's seconds), barsPerGroup, places (price
   *  decimals), withText (default: when the groups are few enough to read). */
  function group(fills, options) {
    const width = Math.max(1, options.barsPerGroup || 1) * options.barSeconds;
    const groups = new Map(); // "<bucket>:<side>" -> fills, in time order
    const sorted = [...fills].sort((a, b) => a.time - b.time);
    for (const fill of sorted) {
      const key = `${Math.floor(fill.time / width)}:${fill.side === "buy" ? "buy" : "sell"}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(fill);
    }
    const withText = options.withText ?? groups.size <= TEXT_GROUPS;
    const markers = [];
    for (const [key, members] of groups) {
      const buy = key.endsWith(":buy");
      const many = members.length > 1;
      markers.push({
        time: members[0].time,
        position: buy ? "belowBar" : "aboveBar",
        color: buy ? BUY : SELL,
        shape: many ? "circle" : buy ? "arrowUp" : "arrowDown",
        text: withText ? label(buy ? "buy" : "sell", members, options.places) : "",
        size: many ? Math.min(2, 1 + Math.log10(members.length)) : 1,
      });
    }
    // setMarkers wants them in time order; at one time, the buy (below the bar) first.
    return markers.sort((a, b) => a.time - b.time || (a.position === "belowBar" ? -1 : 1));
  }

  window.ChartMarkers = { barsPerGroup, group, MAX_GROUPS, TEXT_GROUPS };
})();
