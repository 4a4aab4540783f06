// The evacuation curve: the share of the people who must leave that has reached safety, is en route, has not
// set off, or is trapped, over time; a dashed line at 90 % of those who can get out (the clearance times count
// those: the population less the finally trapped), markers at the 90 % and 100 % clearance times, and a cursor
// that follows the time slider.
import { niceTicks } from "./chart.js";
import { t } from "./i18n.js";
import { h } from "./evacuation-dom.js";

const NS = "http://www.w3.org/2000/svg";
export const SERIES = [
  { key: "evacuated", label: "evacEvacuated", colour: "#2e9d5b", width: 2.4 },
  { key: "en_route", label: "evacEnRoute", colour: "#f0a202", width: 1.6 },
  { key: "not_departed", label: "evacNotDeparted", colour: "#8a949e", width: 1.6 },
  { key: "trapped", label: "evacTrapped", colour: "#d32f2f", width: 1.8 },
];

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * rows: [{t_s, not_departed, en_route, evacuated, trapped}]; summary: the job's summary (population, trapped,
 * clearance_s). Returns {element, setCursor(seconds)}; each series is `path.series[data-series=key]` with one
 * vertex per row.
 */
export function curveChart(rows, summary, { width = 296, height = 170 } = {}) {
  const pad = { left: 34, right: 10, top: 14, bottom: 28 };
  const w = width - pad.left - pad.right;
  const ht = height - pad.top - pad.bottom;
  const population = Math.max(summary.population || 0, 1e-9);
  const lastMin = rows.length ? rows[rows.length - 1].t_s / 60 : 1;
  const step = [5, 10, 15, 20, 30, 60, 90, 120, 180].find((s) => lastMin / s <= 6) || 360;
  const xTicks = Array.from({ length: Math.ceil(lastMin / step - 1e-9) + 1 }, (_, i) => i * step);
  const xMax = Math.max(xTicks[xTicks.length - 1], 1);
  const X = (seconds) => pad.left + (seconds / 60 / xMax) * w;
  const Y = (share) => pad.top + ht - (share / 100) * ht;
  const share = (v) => (100 * v) / population;

  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart evac-chart", role: "img" });
  const grid = el("g", { class: "grid" });
  for (const v of niceTicks(100, 4)) {
    grid.append(el("line", { x1: pad.left, x2: pad.left + w, y1: Y(v), y2: Y(v) }));
    grid.append(el("text", { x: pad.left - 5, y: Y(v) + 3.5, "text-anchor": "end" }, String(v)));
  }
  for (const m of xTicks) {
    grid.append(el("line", { x1: X(m * 60), x2: X(m * 60), y1: pad.top + ht, y2: pad.top + ht + 4 }));
    grid.append(el("text", { x: X(m * 60), y: pad.top + ht + 15, "text-anchor": "middle" }, String(m)));
  }
  grid.append(el("line", { class: "axis", x1: pad.left, x2: pad.left + w, y1: pad.top + ht, y2: pad.top + ht }));
  svg.append(grid);
  svg.append(el("text", { class: "label", x: pad.left + w, y: height - 2, "text-anchor": "end" }, t("min")));
  svg.append(el("text", { class: "label", x: 2, y: 9 }, t("evacShare")));

  // 90 % of the people who can get out, as a share of everyone who must leave
  const reachable = Math.max(0, (summary.population || 0) - (summary.trapped || 0));
  const line90 = share(0.9 * reachable);
  svg.append(el("line", { class: "threshold", "data-share": line90.toFixed(3), x1: pad.left, x2: pad.left + w,
    y1: Y(line90), y2: Y(line90) }));
  svg.append(el("text", { class: "threshold-label", x: pad.left + 3, y: Y(line90) - 3 }, t("evacLine90")));

  for (const s of SERIES) {
    const d = rows.map((r, i) => `${i ? "L" : "M"}${X(r.t_s).toFixed(1)},${Y(share(r[s.key])).toFixed(1)}`).join("");
    svg.append(el("path", { class: "series", "data-series": s.key, d, fill: "none", stroke: s.colour,
      "stroke-width": s.width, "stroke-linejoin": "round" }));
  }

  const clearance = summary.clearance_s || {};
  for (const [key, value] of [["90", clearance["90"]], ["100", clearance["100"]]]) {
    if (value === null || value === undefined) continue;
    const y = key === "90" ? line90 : share(reachable);
    const g = el("g", { class: "clearance-marker", "data-share": key, "data-t": value });
    g.append(el("line", { x1: X(value), x2: X(value), y1: Y(y), y2: pad.top + ht, class: "clearance-drop" }));
    g.append(el("circle", { cx: X(value), cy: Y(y), r: 3.6 }));
    g.append(el("text", { x: X(value) + (X(value) > pad.left + w - 40 ? -4 : 4), y: Y(y) + (key === "90" ? 11 : -4),
      "text-anchor": X(value) > pad.left + w - 40 ? "end" : "start" }, `${key}% ${Math.round(value / 60)}′`));
    svg.append(g);
  }

  const cursor = el("line", { class: "cursor", x1: X(0), x2: X(0), y1: pad.top, y2: pad.top + ht, "data-t": 0 });
  svg.append(cursor);
  const legend = h("div", { class: "evac-legend" }, ...SERIES.map((s) => h("span", { "data-series": s.key },
    h("i", { style: `background:${s.colour}` }), t(s.label))));
  return {
    element: h("div", { class: "evac-chart-box" }, svg, legend),
    setCursor(seconds) {
      const x = X(Math.max(0, seconds)).toFixed(1);
      cursor.setAttribute("x1", x);
      cursor.setAttribute("x2", x);
      cursor.setAttribute("data-t", String(seconds));
    },
  };
}
