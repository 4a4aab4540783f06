// An evacuation job's results on the map, as registry layers: the hazard zone (translucent red, on the ground),
// road links coloured by their load at the time shown (agents on the link / its storage: green, yellow, red;
// width by the people who used it; dashed black once the flood closes them), shelters with their occupancy at
// the time shown, trapped people (red, sized by persons) and, switched off at first, the routes taken.
//
// The links are two GroundPolylinePrimitives (one instance per link part) so that a time step only rewrites
// per-instance colour and show attributes instead of rebuilding entity geometry.
import { t } from "./i18n.js";
import { sampleAt } from "./evacuation-data.js";
import { fmt } from "./evacuation-dom.js";

// load / storage -> colour: linear in RGB between these stops (tests recompute it the same way)
export const LOAD_STOPS = [[0, "#2e9d5b"], [0.5, "#f1c40f"], [1, "#c0392b"]];
export const EMPTY = LOAD_STOPS[0][1];
export const FULL = LOAD_STOPS[LOAD_STOPS.length - 1][1];
export const CLOSED = "#111111";
const HAZARD = "#e53935";
const EXIT = "#1f6fc5";
const TRAPPED = "#d32f2f";
const ROUTE = "#1f6fc5";
const HIGHLIGHT = "#00e5ff";
const OCCUPANCY_CLASSES = [[0.5, "#2e9d5b"], [0.9, "#f0a202"], [Infinity, "#c0392b"]];

const hex = (css) => [1, 3, 5].map((i) => parseInt(css.slice(i, i + 2), 16));
const css = (rgb) => `#${rgb.map((v) => Math.round(v).toString(16).padStart(2, "0")).join("")}`;

/** The colour of a link `share` full (0 empty, 1 at its storage; clamped). */
export function loadColour(share) {
  const s = Math.max(0, Math.min(1, Number.isFinite(share) ? share : 0));
  const k = Math.max(1, LOAD_STOPS.findIndex(([at]) => at >= s));
  const [a, ca] = LOAD_STOPS[k - 1];
  const [b, cb] = LOAD_STOPS[k];
  const f = b > a ? (s - a) / (b - a) : 0;
  const [x, y] = [hex(ca), hex(cb)];
  return css(x.map((v, i) => v + (y[i] - v) * f));
}

export const occupancyColour = (share) => (Number.isFinite(share)
  ? OCCUPANCY_CLASSES.find(([hi]) => share < hi)[1] : OCCUPANCY_CLASSES[0][1]);

const SIDE_M = 3;        // each direction of a two-way road drawn this far to its right (the links are directed)
const MIN_PART_M = 1;    // shorter parts are left out (a sub-metre ground polyline breaks Cesium's batching)

/** Coordinates of a (Multi)LineString as a list of parts. */
const parts = (geometry) => (geometry.type === "MultiLineString" ? geometry.coordinates : [geometry.coordinates]);

/**
 * A line moved `metres` to the right of its direction (on a local plane), with repeated points dropped;
 * null when it is shorter than MIN_PART_M.
 */
export function rightOf(coords, metres) {
  const lat0 = (coords[0][1] * Math.PI) / 180;
  const kx = 111320 * Math.cos(lat0);
  const ky = 110540;
  const pts = [];
  for (const [lon, lat] of coords) {
    const p = [lon * kx, lat * ky];
    const last = pts[pts.length - 1];
    if (!last || Math.hypot(p[0] - last[0], p[1] - last[1]) > 0.05) pts.push(p);
  }
  let length = 0;
  for (let i = 1; i < pts.length; i++) length += Math.hypot(pts[i][0] - pts[i - 1][0], pts[i][1] - pts[i - 1][1]);
  if (pts.length < 2 || length < MIN_PART_M) return null;
  const normal = (a, b) => {
    const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
    const n = Math.hypot(dx, dy);
    return [dy / n, -dx / n];          // to the right of a -> b
  };
  return pts.map((p, i) => {
    const n1 = i > 0 ? normal(pts[i - 1], p) : null;
    const n2 = i < pts.length - 1 ? normal(p, pts[i + 1]) : null;
    let [nx, ny] = n1 && n2 ? [n1[0] + n2[0], n1[1] + n2[1]] : n1 || n2;
    const len = Math.hypot(nx, ny) || 1;
    // mitre: keep the offset lines parallel at a bend (capped at sharp turns)
    const cos = n1 && n2 ? Math.max(0.5, (n1[0] * n2[0] + n1[1] * n2[1] + 1) / 2) : 1;
    const k = metres / len / Math.sqrt(cos);
    [nx, ny] = [nx * k, ny * k];
    return [(p[0] + nx) / kx, (p[1] + ny) / ky];
  });
}

const colourAttr = (css) => Cesium.ColorGeometryInstanceAttribute.toValue(Cesium.Color.fromCssColorString(css));

export class EvacuationOverlay {
  constructor(viewer, registry) {
    this.viewer = viewer;
    this.registry = registry;
    this.jobId = null;
    this.index = 0;             // the sample shown (of loads.times_s)
    this.layerIds = [];
    this.sources = {};          // hazard, shelters, trapped, routes, highlight: data sources
    this.linkPrimitive = null;
    this.closedPrimitive = null;
    this.colours = new Map();   // link id -> css colour at the sample shown
    this.closedShown = new Set();
    this.pending = false;       // colours waiting for the primitives to be ready
  }

  get times() {
    return this.loads ? this.loads.times_s : [];
  }

  async load(jobId, results) {
    this.clear();
    this.jobId = jobId;
    this.loads = results.loads;
    this.occupancy = results.occupancy;
    this.links = new Map(results.layers.links.features.map((f) => [f.properties.link, f]));
    this.column = new Map(results.loads.links.map((id, k) => [id, k]));
    this.shelterFeatures = results.layers.shelters.features;
    const [hazard, routes] = await Promise.all([this._hazard(results.layers.hazard), this._routes(results.layers.routes)]);
    this.sources.hazard = hazard;
    this.sources.routes = routes;
    this.sources.shelters = this._shelters(results.layers.shelters);
    this.sources.trapped = this._trapped(results.layers.trapped);
    this.sources.highlight = new Cesium.CustomDataSource("evac-highlight");
    for (const source of Object.values(this.sources)) if (source) await this.viewer.dataSources.add(source);
    this._linkPrimitives(results.layers.links.features);
    this._register();
    this.setTime(0);
  }

  // -- building the layers -----------------------------------------------------------------------------
  async _hazard(geojson) {
    if (!geojson) return null;
    const source = await Cesium.GeoJsonDataSource.load(geojson, { clampToGround: true });
    source.name = "evac-hazard";
    const fill = new Cesium.ColorMaterialProperty(Cesium.Color.fromCssColorString(HAZARD).withAlpha(0.3));
    for (const entity of source.entities.values) {
      if (!entity.polygon) continue;
      entity.polygon.material = fill;
      entity.polygon.outline = false;     // outlines are not drawn on the ground
    }
    return source;
  }

  async _routes(geojson) {
    if (!geojson || !geojson.features.length) return null;
    const source = await Cesium.GeoJsonDataSource.load(geojson, { clampToGround: true });
    source.name = "evac-routes";
    const most = Math.max(1, ...geojson.features.map((f) => f.properties.persons || 0));
    const colour = new Cesium.ColorMaterialProperty(Cesium.Color.fromCssColorString(ROUTE).withAlpha(0.75));
    for (const entity of source.entities.values) {
      if (!entity.polyline) continue;
      const persons = entity.properties.persons?.getValue() ?? 0;
      entity.polyline.width = 1.5 + 4.5 * Math.sqrt(persons / most);
      entity.polyline.material = colour;
      entity.polyline.classificationType = Cesium.ClassificationType.TERRAIN;
    }
    return source;
  }

  _shelters(geojson) {
    const source = new Cesium.CustomDataSource("evac-shelters");
    for (const f of geojson.features) {
      const [lon, lat] = f.geometry.coordinates;
      source.entities.add({
        id: `evac-shelter-${f.properties.shelter}`,
        position: Cesium.Cartesian3.fromDegrees(lon, lat),
        point: { pixelSize: f.properties.kind === "exit" ? 10 : 15, outlineColor: Cesium.Color.WHITE, outlineWidth: 2,
          heightReference: Cesium.HeightReference.CLAMP_TO_GROUND, disableDepthTestDistance: Infinity },
        label: { font: "12px sans-serif", fillColor: Cesium.Color.WHITE, outlineColor: Cesium.Color.fromCssColorString("#13202c"),
          outlineWidth: 3, style: Cesium.LabelStyle.FILL_AND_OUTLINE, verticalOrigin: Cesium.VerticalOrigin.BOTTOM,
          pixelOffset: new Cesium.Cartesian2(0, -12), heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
          disableDepthTestDistance: Infinity, showBackground: true,
          backgroundColor: Cesium.Color.fromCssColorString("#13202c").withAlpha(0.55) },
      });
    }
    return source;
  }

  _trapped(geojson) {
    const source = new Cesium.CustomDataSource("evac-trapped");
    const features = geojson ? geojson.features : [];
    const most = Math.max(1, ...features.map((f) => f.properties.persons || 0));
    features.forEach((f, i) => {
      const [lon, lat] = f.geometry.coordinates;
      const persons = f.properties.persons || 0;
      source.entities.add({
        id: `evac-trapped-${i}`,
        position: Cesium.Cartesian3.fromDegrees(lon, lat),
        properties: { persons, reason: f.properties.reason },
        point: { pixelSize: 6 + 22 * Math.sqrt(persons / most), color: Cesium.Color.fromCssColorString(TRAPPED).withAlpha(0.8),
          outlineColor: Cesium.Color.WHITE, outlineWidth: 1.5, heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
          disableDepthTestDistance: Infinity },
        // numbers on the larger clusters only: dozens of small ones would hide the map
        label: { show: persons >= 0.1 * most, text: fmt(persons), font: "11px sans-serif", fillColor: Cesium.Color.WHITE,
          outlineColor: Cesium.Color.fromCssColorString("#5a0d0d"), outlineWidth: 3, style: Cesium.LabelStyle.FILL_AND_OUTLINE,
          heightReference: Cesium.HeightReference.CLAMP_TO_GROUND, disableDepthTestDistance: Infinity,
          verticalOrigin: Cesium.VerticalOrigin.CENTER },
      });
    });
    return source;
  }

  _linkPrimitives(features) {
    const most = Math.max(1, ...features.map((f) => f.properties.persons || 0));
    const open = [];
    const closed = [];
    this.instanceIds = new Map();       // link id -> [instance ids]
    for (const f of features) {
      const p = f.properties;
      const width = 2 + 6 * Math.sqrt((p.persons || 0) / most);
      const ids = [];
      parts(f.geometry).forEach((part, k) => {
        const coords = rightOf(part, SIDE_M);
        if (!coords) return;
        const id = `evac-link-${p.link}-${k}`;
        ids.push(id);
        const positions = Cesium.Cartesian3.fromDegreesArray(coords.flat());
        open.push(new Cesium.GeometryInstance({
          id, geometry: new Cesium.GroundPolylineGeometry({ positions, width }),
          attributes: { color: Cesium.ColorGeometryInstanceAttribute.fromColor(Cesium.Color.fromCssColorString(EMPTY)),
            show: new Cesium.ShowGeometryInstanceAttribute(true) },
        }));
        if (Number.isFinite(p.closed_at_s)) {
          closed.push(new Cesium.GeometryInstance({
            id: `${id}-closed`, geometry: new Cesium.GroundPolylineGeometry({ positions, width: Math.max(3, width) }),
            attributes: { show: new Cesium.ShowGeometryInstanceAttribute(false) },
          }));
        }
      });
      this.instanceIds.set(p.link, ids);
    }
    const scene = this.viewer.scene;
    this.linkPrimitive = scene.groundPrimitives.add(new Cesium.GroundPolylinePrimitive({
      geometryInstances: open, appearance: new Cesium.PolylineColorAppearance(),
      classificationType: Cesium.ClassificationType.TERRAIN,
    }));
    if (closed.length) {
      this.closedPrimitive = scene.groundPrimitives.add(new Cesium.GroundPolylinePrimitive({
        geometryInstances: closed, classificationType: Cesium.ClassificationType.TERRAIN,
        appearance: new Cesium.PolylineMaterialAppearance({ material: Cesium.Material.fromType("PolylineDash",
          { color: Cesium.Color.fromCssColorString(CLOSED), gapColor: Cesium.Color.TRANSPARENT, dashLength: 14 }) }),
      }));
    }
  }

  _register() {
    const viewer = this.viewer;
    const self = this;
    const add = (layer) => { this.layerIds.push(layer.id); this.registry.register({ kind: "evacuation", ...layer }); };
    const toggle = (name) => ({
      show() { if (self.sources[name]) self.sources[name].show = true; viewer.scene.requestRender(); },
      hide() { if (self.sources[name]) self.sources[name].show = false; viewer.scene.requestRender(); },
    });
    if (this.sources.hazard) {
      add({ id: "evac-hazard", title: { zh: "疏散危险区", en: "Evacuation hazard zone" }, order: 10, visible: true,
        legend: () => ({ kind: "swatches", items: [{ color: "rgba(229, 57, 53, .45)", label: { zh: "需撤离区域", en: "Zone to leave" } }] }),
        ...toggle("hazard") });
    }
    add({
      id: "evac-links", title: { zh: "道路负荷（动画）", en: "Road load (animated)" }, order: 11, visible: true,
      legend: () => ({ kind: "ramp", items: [
        { color: loadColour(0), label: { zh: "空闲", en: "Empty" } },
        { color: loadColour(0.5), label: { zh: "半满", en: "Half full" } },
        { color: loadColour(1), label: { zh: "满载（拥堵）", en: "Full (jammed)" } },
        { color: CLOSED, label: { zh: "已封闭（水浸，虚线）", en: "Closed (flooded, dashed)" } }] }),
      show() { self._showLinks(true); },
      hide() { self._showLinks(false); },
    });
    add({ id: "evac-shelters", title: { zh: "避难场所", en: "Shelters" }, order: 12, visible: true,
      legend: () => ({ kind: "swatches", items: [
        { color: OCCUPANCY_CLASSES[0][1], label: { zh: "占用 < 50%", en: "< 50% full" } },
        { color: OCCUPANCY_CLASSES[1][1], label: { zh: "占用 50–90%", en: "50–90% full" } },
        { color: OCCUPANCY_CLASSES[2][1], label: { zh: "占用 ≥ 90%", en: "≥ 90% full" } },
        { color: EXIT, label: { zh: "出口", en: "Exit" } }] }),
      ...toggle("shelters") });
    add({ id: "evac-trapped", title: { zh: "受困人员", en: "Trapped people" }, order: 13, visible: true,
      legend: () => ({ kind: "swatches", items: [{ color: TRAPPED, label: { zh: "受困（按人数）", en: "Trapped (by persons)" } }] }),
      ...toggle("trapped") });
    if (this.sources.routes) {
      add({ id: "evac-routes", title: { zh: "疏散路线", en: "Evacuation routes" }, order: 14, visible: false,
        legend: () => ({ kind: "swatches", items: [{ color: ROUTE, label: { zh: "路线（宽度按人数）", en: "Route (width by persons)" } }] }),
        ...toggle("routes") });
    }
  }

  _showLinks(on) {
    if (this.linkPrimitive) this.linkPrimitive.show = on;
    if (this.closedPrimitive) this.closedPrimitive.show = on;
    this.viewer.scene.requestRender();
  }

  // -- time ----------------------------------------------------------------------------------------------
  /** Show the sample at or just before `seconds`; returns the time shown. */
  setTime(seconds) {
    if (!this.loads) return 0;
    this.index = sampleAt(this.times, seconds);
    const time = this.times[this.index];
    const loads = this.loads.loads[this.index] || [];
    this.colours.clear();
    this.closedShown.clear();
    for (const [id, f] of this.links) {
      const closedAt = f.properties.closed_at_s;
      if (Number.isFinite(closedAt) && time >= closedAt) {
        this.colours.set(id, CLOSED);
        this.closedShown.add(id);
        continue;
      }
      const k = this.column.get(id);
      const storage = k === undefined ? 0 : this.loads.storage[k];
      const load = k === undefined ? 0 : loads[k];
      this.colours.set(id, loadColour(storage > 0 ? load / storage : 0));
    }
    this._updateShelters();
    this.pending = true;
    this._apply();
    return time;
  }

  /** The time of the sample with the most people on the roads (0 without loads). */
  peakTime() {
    if (!this.loads || !this.loads.loads.length) return 0;
    const totals = this.loads.loads.map((row) => row.reduce((a, b) => a + b, 0));
    return this.times[totals.indexOf(Math.max(...totals))];
  }

  shownTime() {
    return this.loads ? this.times[this.index] : null;
  }

  /** The colour (css hex) of a link at the time shown; CLOSED once the flood closed it. */
  linkColour(linkId) {
    return this.colours.get(linkId) ?? null;
  }

  /** What the primitives draw for a link: {colour, show, closed} (null before they are ready), for tests. */
  drawnLink(linkId) {
    const ids = (this.instanceIds || new Map()).get(linkId);
    if (!ids || !ids.length || !this.linkPrimitive || !this.linkPrimitive.ready) return null;
    const attrs = this.linkPrimitive.getGeometryInstanceAttributes(ids[0]);
    const closedAttrs = this.closedPrimitive && this.closedPrimitive.ready
      ? this.closedPrimitive.getGeometryInstanceAttributes(`${ids[0]}-closed`) : null;
    const c = attrs.color;
    return { colour: css([c[0], c[1], c[2]]), show: !!attrs.show[0], closed: !!(closedAttrs && closedAttrs.show[0]) };
  }

  /** Resolves once the link primitives are built and show the time set last. */
  whenReady(timeoutMs = 30000) {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        this._apply();
        if (!this.pending) { clearInterval(timer); resolve(true); }
        else if (performance.now() - started > timeoutMs) { clearInterval(timer); reject(new Error("road links not ready")); }
      }, 50);
    });
  }

  _apply() {
    const scene = this.viewer.scene;
    const ready = (p) => !p || p.ready;
    if (!this.pending || !this.linkPrimitive) return;
    if (!ready(this.linkPrimitive) || !ready(this.closedPrimitive)) {
      scene.requestRender();             // async geometry: keep frames coming until it is built
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this._apply(), 100);
      return;
    }
    for (const [id, ids] of this.instanceIds) {
      const closed = this.closedShown.has(id);
      const colour = colourAttr(this.colours.get(id) || EMPTY);
      for (const instanceId of ids) {
        const attrs = this.linkPrimitive.getGeometryInstanceAttributes(instanceId);
        attrs.color = colour;
        attrs.show = Cesium.ShowGeometryInstanceAttribute.toValue(!closed);
        if (this.closedPrimitive) {
          const dash = this.closedPrimitive.getGeometryInstanceAttributes(`${instanceId}-closed`);
          if (dash) dash.show = Cesium.ShowGeometryInstanceAttribute.toValue(closed);
        }
      }
    }
    this.pending = false;
    scene.requestRender();
  }

  _updateShelters() {
    const source = this.sources.shelters;
    if (!source || !this.occupancy) return;
    const i = sampleAt(this.occupancy.times, this.shownTime());
    for (const f of this.shelterFeatures) {
      const p = f.properties;
      const entity = source.entities.getById(`evac-shelter-${p.shelter}`);
      const series = this.occupancy.byShelter.get(p.shelter);
      const occupancy = series ? series[i] : p.occupancy;
      const exit = p.kind === "exit";
      const share = Number.isFinite(p.capacity) && p.capacity > 0 ? occupancy / p.capacity : NaN;
      entity.point.color = Cesium.Color.fromCssColorString(exit ? EXIT : occupancyColour(share));
      const name = exit ? t("evacExitLabel") : p.name;
      entity.label.text = exit ? `${name} · ${fmt(occupancy)}`
        : `${name}\n${fmt(occupancy)} / ${fmt(p.capacity)} (${fmt(100 * (share || 0))}%)`;
      entity.properties = { occupancy, share };
    }
    this.viewer.scene.requestRender();
  }

  /** Occupancy of each shelter at the time shown: [{shelter, occupancy, share, colour}], for the panel and tests. */
  shelterState() {
    const source = this.sources.shelters;
    if (!source) return [];
    return this.shelterFeatures.map((f) => {
      const entity = source.entities.getById(`evac-shelter-${f.properties.shelter}`);
      return { shelter: f.properties.shelter, occupancy: entity.properties.occupancy.getValue(),
        colour: entity.point.color.getValue().toCssHexString() };
    });
  }

  /** Labels in the current language. */
  relabel() {
    if (!this.loads) return;
    this._updateShelters();
    for (const e of this.sources.trapped ? this.sources.trapped.entities.values : []) {
      e.label.text = fmt(e.properties.persons.getValue());
    }
  }

  // -- a road of the bottleneck list ------------------------------------------------------------------
  /** The link's centre {lon, lat} and its length in degrees, with a highlight drawn over it; null if unknown. */
  highlightLink(linkId) {
    const f = this.links && this.links.get(linkId);
    const source = this.sources.highlight;
    if (!f || !source) return null;
    source.entities.removeAll();
    const coords = parts(f.geometry).flat();
    parts(f.geometry).forEach((part, k) => source.entities.add({
      id: `evac-highlight-${k}`,
      polyline: { positions: Cesium.Cartesian3.fromDegreesArray(part.flat()), width: 9, clampToGround: true,
        material: new Cesium.PolylineGlowMaterialProperty({ color: Cesium.Color.fromCssColorString(HIGHLIGHT), glowPower: 0.25 }),
        classificationType: Cesium.ClassificationType.TERRAIN },
    }));
    this.viewer.scene.requestRender();
    const lons = coords.map((c) => c[0]);
    const lats = coords.map((c) => c[1]);
    return { lon: (Math.min(...lons) + Math.max(...lons)) / 2, lat: (Math.min(...lats) + Math.max(...lats)) / 2,
      span: Math.max(Math.max(...lons) - Math.min(...lons), Math.max(...lats) - Math.min(...lats)) };
  }

  clear() {
    for (const id of this.layerIds) this.registry.unregister(id);
    this.layerIds = [];
    for (const source of Object.values(this.sources)) if (source) this.viewer.dataSources.remove(source, true);
    this.sources = {};
    for (const p of [this.linkPrimitive, this.closedPrimitive]) if (p) this.viewer.scene.groundPrimitives.remove(p);
    this.linkPrimitive = this.closedPrimitive = null;
    clearTimeout(this.retry);
    this.colours.clear();
    this.closedShown.clear();
    this.pending = false;
    this.loads = this.occupancy = this.links = null;
    this.jobId = null;
    this.index = 0;
    this.viewer.scene.requestRender();
  }
}
