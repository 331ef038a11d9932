/*
 * A parallel-coordinates view of an optimisation's trials, drawn as SVG:
 * window.ParallelCoordinates.draw(container, data, format).
 *
 * `data` is the page's "optimization-data" (backtests/optimization_pages.py): `axes`, one per
 * searched parameter ({name, label, kind: "range", low, high, log} or {name, label, kind:
 * "choice", choices: [text, ...]}), `trials` ([{number, value, params: {name: value}}]), the
 * `best_trial` and the `objective`'s label; the objective's value is the last axis. Each trial is
 * a line across the axes, coloured by its value from dark blue (the lowest) to yellow (the
 * highest), the best drawn last and thicker; its tooltip names it. `format` writes a value.
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

  function draw(container, data, format) {
    const trials = data.trials.filter((trial) => Number.isFinite(trial.value));
    const values = trials.map((trial) => trial.value);
    const low = values.length ? Math.min(...values) : 0;
    const high = values.length ? Math.max(...values) : 1;
    const valueAxis = {
      name: "__value", label: data.objective, kind: "range", low,
      high: high > low ? high : low + 1, log: false, format,
    };
    const axes = [...data.axes, valueAxis];
    const width = Math.max(container.clientWidth || 0, SIDE * 2 + MIN_GAP * (axes.length - 1));
    const xs = axes.map((_, index) => SIDE + (index * (width - 2 * SIDE)) / Math.max(axes.length - 1, 1));
    const svg = element("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT });
    drawAxes(svg, axes, xs);
    const scales = axes.map(scaleOf);
    const ordered = [...trials].sort((a, b) => (a.number === data.best_trial) - (b.number === data.best_trial)
      || a.value - b.value);
    const lines = element("g", { class: "lines" });
    for (const trial of ordered) {
      const points = axes.map((axis, index) => {
        const share = scales[index](axis === valueAxis ? trial.value : trial.params[axis.name]);
        return share === null ? null : `${xs[index].toFixed(1)},${(BOTTOM - share * (BOTTOM - TOP)).toFixed(1)}`;
      });
      if (points.includes(null)) continue;
      const share = high > low ? (trial.value - low) / (high - low) : 1;
      const best = trial.number === data.best_trial;
      const line = element("polyline", {
        points: points.join(" "), stroke: colour(share), class: best ? "best" : "",
        "data-trial": trial.number,
      });
      const params = Object.entries(trial.params).map(([name, value]) => `${name}=${value}`);
      line.append(element("title", {}, `Trial #${trial.number}: ${format(trial.value)} · ${params.join(", ")}`));
      lines.append(line);
    }
    svg.append(lines);
    container.replaceChildren(svg);
    container.dataset.lines = String(lines.childElementCount);
  }

  window.ParallelCoordinates = { draw };
})();
