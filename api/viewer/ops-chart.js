// A sensor's recent readings as a small SVG chart: time on x (local clock), the warning and alarm levels as
// dashed lines, the dead band below each level (hysteresis) shaded. On/off series draw as steps.
const NS = "http://www.w3.org/2000/svg";
const TIME_STEPS_MIN = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 360, 720, 1440];
const LEVEL_COLOURS = { warning: "#e69500", alarm: "#d93025" };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Round ticks (1, 2, 2.5, 5 × 10^n) covering [lo, hi]. */
export function rangeTicks(lo, hi, count = 4) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v < hi + step * 0.999; v += step) ticks.push(Number(v.toFixed(6)));
  return ticks;
}

const clock = (ms) => {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
};

/**
 * series: [{time (epoch ms), value}] in time order. Options: thresholds {warning, alarm, hysteresis, direction},
 * levelLabels {warning, alarm}, unit, step (on/off), format(value), width, height.
 */
export function timeChart(series, opts = {}) {
  const { width = 296, height = 160, thresholds = null, levelLabels = {}, unit = "", step = false,
    format = (v) => String(v), colour = "#1f6fc5" } = opts;
  const pad = { left: 40, right: 10, top: 14, bottom: 24 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const times = series.map((p) => p.time);
  const values = series.map((p) => Number(p.value));
  const levels = thresholds ? ["warning", "alarm"].filter((k) => typeof thresholds[k] === "number") : [];
  const levelValues = levels.map((k) => thresholds[k]);
  const tMin = Math.min(...times);
  const tMax = Math.max(...times, tMin + 60e3);
  const yTicks = step ? [0, 1]
    : rangeTicks(Math.min(0, ...values), Math.max(...values, ...levelValues.map((v) => v * 1.1), 0.01));
  const yLo = yTicks[0];
  const yHi = yTicks[yTicks.length - 1];
  const X = (v) => pad.left + ((v - tMin) / (tMax - tMin)) * w;
  const Y = (v) => pad.top + h - ((v - yLo) / (yHi - yLo || 1)) * h;

  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart ops-chart", role: "img" });
  const grid = el("g", { class: "grid" });
  yTicks.forEach((v) => {
    grid.append(el("line", { x1: pad.left, x2: pad.left + w, y1: Y(v), y2: Y(v) }));
    grid.append(el("text", { x: pad.left - 5, y: Y(v) + 3.5, "text-anchor": "end" }, format(v)));
  });
  const spanMin = (tMax - tMin) / 60e3;
  const stepMin = TIME_STEPS_MIN.find((s) => spanMin / s <= 5) || 2880;
  const first = Math.ceil(tMin / (stepMin * 60e3)) * stepMin * 60e3;
  for (let v = first; v <= tMax; v += stepMin * 60e3) {
    grid.append(el("line", { x1: X(v), x2: X(v), y1: pad.top + h, y2: pad.top + h + 4 }));
    grid.append(el("text", { x: X(v), y: pad.top + h + 15, "text-anchor": "middle" }, clock(v)));
  }
  grid.append(el("line", { class: "axis", x1: pad.left, x2: pad.left + w, y1: pad.top + h, y2: pad.top + h }));
  svg.append(grid);
  if (unit) svg.append(el("text", { class: "label", x: 2, y: 10 }, unit));

  for (const kind of levels) {
    const value = thresholds[kind];
    if (value < yLo || value > yHi) continue;
    const band = (thresholds.hysteresis || 0) * (thresholds.direction === "below" ? 1 : -1);
    if (band) {
      const a = Y(value);
      const b = Y(Math.max(yLo, Math.min(yHi, value + band)));
      svg.append(el("rect", { class: `band ${kind}`, x: pad.left, width: w, y: Math.min(a, b), height: Math.abs(a - b),
        fill: LEVEL_COLOURS[kind], "fill-opacity": 0.08 }));
    }
    svg.append(el("line", { class: `threshold ${kind}`, "data-value": value, x1: pad.left, x2: pad.left + w,
      y1: Y(value), y2: Y(value), stroke: LEVEL_COLOURS[kind] }));
    svg.append(el("text", { class: `threshold-label ${kind}`, x: pad.left + 4, y: Y(value) - 3,
      fill: LEVEL_COLOURS[kind] }, `${levelLabels[kind] || kind} ${format(value)}`));
  }
  if (series.length) {
    const pts = series.map((p) => [X(p.time), Y(Number(p.value))]);
    const d = pts.map(([x, y], i) => {
      if (!i) return `M${x.toFixed(1)},${y.toFixed(1)}`;
      return step ? `H${x.toFixed(1)}V${y.toFixed(1)}` : `L${x.toFixed(1)},${y.toFixed(1)}`;
    }).join("");
    svg.append(el("path", { class: "line", d, fill: "none", stroke: colour, "stroke-width": 2 }));
    pts.forEach(([x, y], i) => svg.append(el("circle", { cx: x, cy: y, r: i === pts.length - 1 ? 3.4 : 2,
      fill: colour, "data-value": series[i].value })));
  }
  return svg;
}
