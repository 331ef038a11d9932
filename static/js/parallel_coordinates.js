/*
 * A parallel-coordinates view of an optimisation's trials, drawn as SVG:
 * window.ParallelCoordinates.draw(container, data, format).
 *
 * `data` is the page's "optimization-data" (backtests/optimization_pages.py): `axes`, one per
 * searched parameter ({name, label, kind: "range", low, high, log} or {name, label, kind:
 * "choice", choices: [text, ...]}), `trials` ([{number, value, params: {name: value}}]), the
 * `best_trial` and the `objective`'s label; the objective's value is the last axis. Each trial is
 * a line across the axes, coloured by the rank of its value from dark blue (the lowest) to yellow
 * (the highest), the best drawn last and thicker; its tooltip names it. `format` writes a value.
 * The container's data-lines says how many lines are drawn.
 */
(() => {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const HEIGHT = 340;
  const TOP = 40;
  const BOTTOM = HEIGHT - 28;
  const SIDE = 70;
  const MIN_GAP = 120;
  const VALUE = "__value"; // the objective's axis

  function element(name, attributes = {}, text = "") {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text) node.textContent = text;
    return node;
  }

  /** Where a value sits on an axis, 0 (bottom) to 1 (top); null when it cannot be placed. */
  function scaleOf(axis) {
    if (axis.kind === "choice") {
      const places = new Map(axis.choices.map((choice, index) => [String(choice), index]));
      const last = Math.max(axis.choices.length - 1, 1);
      return (value) => {
        const index = places.get(String(value));
        if (index === undefined) return null;
        return axis.choices.length === 1 ? 0.5 : index / last;
      };
    }
    const log = axis.log && axis.low > 0;
    const map = log ? Math.log : (value) => value;
    const low = map(axis.low);
    const span = map(axis.high) - low || 1;
    return (value) => {
      const number = Number(value);
      if (!Number.isFinite(number)) return null;
      return Math.min(1, Math.max(0, (map(number) - low) / span));
    };
  }

  function colour(share) {
    // dark blue (low) to yellow (high), readable on the dark background
    const hue = 250 - 195 * share;
    return `hsl(${hue.toFixed(0)} 75% ${(38 + 22 * share).toFixed(0)}%)`;
  }

  function ticks(axis) {
    if (axis.kind === "choice") return axis.choices.map((choice) => [choice, String(choice)]);
    const text = axis.format || ((value) => String(Number(Number(value).toPrecision(4))));
    return [[axis.low, text(axis.low)], [axis.high, text(axis.high)]];
  }

  function drawAxes(svg, axes, xs) {
    axes.forEach((axis, index) => {
      const x = xs[index];
      const group = element("g", { class: "axis" });
      group.append(element("line", { x1: x, x2: x, y1: TOP, y2: BOTTOM }));
      group.append(element("text", { x, y: TOP - 22, "text-anchor": "middle", class: "axis-label" },
        axis.label));
      const place = scaleOf(axis);
      for (const [value, text] of ticks(axis)) {
        const y = BOTTOM - place(value) * (BOTTOM - TOP);
        group.append(element("text", { x: x + 5, y: y + 4 }, text));
      }
      svg.append(group);
    });
  }

  /** The trial's line through the axes (null when one of its values has no place on them). */
  function lineOf(trial, axes, xs, scales) {
    const points = [];
    for (const [index, axis] of axes.entries()) {
      const share = scales[index](axis.name === VALUE ? trial.value : trial.params[axis.name]);
      if (share === null) return null;
      points.push(`${xs[index].toFixed(1)},${(BOTTOM - share * (BOTTOM - TOP)).toFixed(1)}`);
    }
    return points.join(" ");
  }

  function draw(container, data, format) {
    const trials = data.trials.filter((trial) => Number.isFinite(trial.value))
      .sort((a, b) => a.value - b.value);
    const low = trials.length ? trials[0].value : 0;
    const high = trials.length ? trials[trials.length - 1].value : 1;
    const valueAxis = {
      name: VALUE, label: data.objective, kind: "range", low,
      high: high > low ? high : low + 1, log: false, format,
    };
    const axes = [...data.axes, valueAxis];
    const width = Math.max(container.clientWidth || 0, SIDE * 2 + MIN_GAP * (axes.length - 1));
    const gap = (width - 2 * SIDE) / Math.max(axes.length - 1, 1);
    const xs = axes.map((_, index) => SIDE + index * gap);
    const scales = axes.map(scaleOf);
    const svg = element("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT });
    const lines = element("g", { class: "lines" });
    const isBest = (trial) => trial.number === data.best_trial;
    // Worst first (each colour is its rank), so that better lines cover worse; the best last.
    const ranked = trials.map((trial, rank) => ({ trial, rank }));
    ranked.sort((a, b) => isBest(a.trial) - isBest(b.trial) || a.rank - b.rank);
    for (const { trial, rank } of ranked) {
      const points = lineOf(trial, axes, xs, scales);
      if (points === null) continue;
      const line = element("polyline", {
        points, stroke: colour(trials.length > 1 ? rank / (trials.length - 1) : 1),
        class: isBest(trial) ? "best" : "", "data-trial": trial.number,
      });
      const params = Object.entries(trial.params).map(([name, value]) => `${name}=${value}`);
      const title = `Trial #${trial.number}: ${format(trial.value)} · ${params.join(", ")}`;
      line.append(element("title", {}, title));
      lines.append(line);
    }
    svg.append(lines);
    drawAxes(svg, axes, xs); // over the lines, so that their labels stay readable
    container.replaceChildren(svg);
    container.dataset.lines = String(lines.childElementCount);
  }

  window.ParallelCoordinates = { draw };
})();
