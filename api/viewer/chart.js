// A tiny SVG line chart (no chart library): one series, axes with round ticks, an optional threshold line.
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** About `count` round tick values (1, 2, 2.5, 5 x 10^n steps) from 0 to at least `max`. */
export function niceTicks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toFixed(6)));
  return ticks;
}

/**
 * points: [[x, y], ...] (x ascending). Options: width, height, xLabel, yLabel, threshold {value, label},
 * colour, format(y), xStep (a fixed x tick step). Returns an <svg> element; the line is `path.line` with one vertex per point.
 */
export function lineChart(points, opts = {}) {
  const { width = 296, height = 150, xLabel = "", yLabel = "", threshold = null, colour = "#1f6fc5",
    format = (v) => String(v), xStep = null } = opts;
  const pad = { left: 38, right: 10, top: 22, bottom: 30 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const xMin = Math.min(...xs, 0);
  const xSpan = Math.max(...xs, 1) - xMin;
  const xTicks = (xStep ? Array.from({ length: Math.ceil(xSpan / xStep - 1e-9) + 1 }, (_, i) => i * xStep)
    : niceTicks(xSpan, 5)).map((t) => t + xMin);
  const yTicks = niceTicks(Math.max(...ys, threshold ? threshold.value * 1.15 : 0, 0.05), 4);
  const xMax = xTicks[xTicks.length - 1];
  const yMax = yTicks[yTicks.length - 1];
  const X = (v) => pad.left + ((v - xMin) / (xMax - xMin || 1)) * w;
  const Y = (v) => pad.top + h - (v / (yMax || 1)) * h;

  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", role: "img" });
  const grid = el("g", { class: "grid" });
  for (const t of yTicks) {
    grid.append(el("line", { x1: pad.left, x2: pad.left + w, y1: Y(t), y2: Y(t) }));
    grid.append(el("text", { x: pad.left - 5, y: Y(t) + 3.5, "text-anchor": "end" }, format(t)));
  }
  for (const t of xTicks) {
    grid.append(el("line", { x1: X(t), x2: X(t), y1: pad.top + h, y2: pad.top + h + 4 }));
    grid.append(el("text", { x: X(t), y: pad.top + h + 15, "text-anchor": "middle" }, String(t)));
  }
  grid.append(el("line", { class: "axis", x1: pad.left, x2: pad.left + w, y1: pad.top + h, y2: pad.top + h }));
  svg.append(grid);
  if (xLabel) svg.append(el("text", { class: "label", x: pad.left + w, y: height - 2, "text-anchor": "end" }, xLabel));
  if (yLabel) svg.append(el("text", { class: "label", x: 2, y: 10 }, yLabel));
  if (threshold && threshold.value <= yMax) {
    svg.append(el("line", { class: "threshold", x1: pad.left, x2: pad.left + w, y1: Y(threshold.value), y2: Y(threshold.value) }));
    if (threshold.label) {
      svg.append(el("text", { class: "threshold-label", x: pad.left + w - 2, y: Y(threshold.value) - 3, "text-anchor": "end" },
        threshold.label));
    }
  }
  if (points.length) {
    const line = points.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
    const area = `${line}L${X(xs[xs.length - 1]).toFixed(1)},${Y(0)}L${X(xs[0]).toFixed(1)},${Y(0)}Z`;
    svg.append(el("path", { class: "area", d: area, fill: colour, "fill-opacity": 0.15 }));
    svg.append(el("path", { class: "line", d: line, fill: "none", stroke: colour, "stroke-width": 2 }));
    for (const [x, y] of points) svg.append(el("circle", { cx: X(x), cy: Y(y), r: 2.2, fill: colour }));
  }
  return svg;
}
