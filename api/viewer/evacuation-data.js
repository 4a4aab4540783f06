// Reading an evacuation job's results: the results document (summary inline, layers and files by href),
// the result layers as WGS84 GeoJSON, and the curve, shelter occupancy and link load tables.
import { authHeaders, getJSON } from "./api.js";

const LAYERS = ["hazard", "links", "shelters", "trapped", "routes"];

async function getText(url) {
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) {
    const error = new Error(`${url}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.text();
}

/** One CSV line's fields (quotes as pandas writes them: a shelter's name may hold a comma). */
function fields(line) {
  const out = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { out.push(field); field = ""; }
    else field += c;
  }
  out.push(field);
  return out;
}

/** A CSV of numbers under a header row -> {columns, rows: [[...numbers]]}. */
export function parseCsv(text) {
  const lines = text.trim().split(/\r?\n/);
  const columns = fields(lines[0]);
  const rows = lines.slice(1).map((line) => line.split(",").map(Number));
  return { columns, rows };
}

/** The curve CSV as objects {t_s, not_departed, en_route, evacuated, trapped}. */
export function curveRows(text) {
  const { columns, rows } = parseCsv(text);
  return rows.map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i]])));
}

/** Shelter occupancy CSV (t_s, then "index:name" per shelter) -> {times, byShelter: Map(index -> [persons])}. */
export function occupancySeries(text) {
  const { columns, rows } = parseCsv(text);
  const byShelter = new Map();
  columns.slice(1).forEach((name, k) => byShelter.set(Number(name.split(":")[0]), rows.map((r) => r[k + 1])));
  return { times: rows.map((r) => r[0]), byShelter };
}

/** The index of the sample at or just before `seconds` (times ascending). */
export function sampleAt(times, seconds) {
  let lo = 0;
  let hi = times.length - 1;
  if (hi < 0 || seconds <= times[0]) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (times[mid] <= seconds) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Everything the panel shows of a successful job. */
export async function loadResults(jobId) {
  const base = `/ogc/jobs/${jobId}`;
  const [job, doc] = await Promise.all([getJSON(base), getJSON(`${base}/results`)]);
  const href = (name) => (doc[name] && doc[name].href) || `${base}/results/${name}`;
  const [layers, curve, occupancy, loads] = await Promise.all([
    Promise.all(LAYERS.map((name) => (doc[name] ? getJSON(href(name)) : null))),
    getText(href("curve")).then(curveRows),
    getText(href("shelter_occupancy")).then(occupancySeries),
    getJSON(href("link_loads")),
  ]);
  return {
    job, summary: doc.summary, curve, occupancy, loads,
    layers: Object.fromEntries(LAYERS.map((name, i) => [name, layers[i]])),
  };
}
