// The sensors on the map: one billboard per site, its shape by kind (rain gauge ●, river stage ■,
// waterlogging point ◆, pump station ⬢), tinted by state; pumps show running ▶ or stopped ■. Labels show
// on hover and for the selected site; a purple ring marks a site a forecast event is about. Active events at
// places no site covers get a triangle. Registered as the layer "sensors" once the network has sites.
import { t } from "./i18n.js";
import { isActive, isForecast } from "./ops-model.js";
import { KIND_KEYS, STATE_KEYS } from "./ops-strings.js";

export const COLOURS = { normal: "#2e9d5b", warning: "#f0a202", alarm: "#d93025", offline: "#8a949e",
  forecast: "#7b4fd6", event: "#5b6b7b" };
const INK = "#1b2633";
const SIZE = 26;
const HOVER_MS = 120;

const SHAPES = {
  rain: '<circle cx="16" cy="16" r="13.5"/>',
  stage: '<rect x="3" y="3" width="26" height="26" rx="5"/>',
  waterlogging: '<path d="M16 1.5 30.5 16 16 30.5 1.5 16z"/>',
  pump: '<path d="M9 3h14l7 13-7 13H9L2 16z"/>',
  other: '<circle cx="16" cy="16" r="13.5"/>',
  event: '<path d="M16 2.5 30.5 28.5h-29z"/>',
};
const GLYPHS = {
  rain: `<path d="M16 8.5c-3.2 4.6-5 7.1-5 9.4a5 5 0 0 0 10 0c0-2.3-1.8-4.8-5-9.4z" fill="${INK}"/>`,
  stage: `<path d="M10.5 8v16M10.5 10.5h3M10.5 14.5h3M10.5 18.5h3" stroke="${INK}" stroke-width="1.8" fill="none"/>`
    + `<path d="M15 17.5q2-2 4 0t4 0M15 22q2-2 4 0t4 0" stroke="${INK}" stroke-width="1.8" fill="none"/>`,
  waterlogging: `<path d="M16 8c-2.6 3.8-4 5.7-4 7.6a4 4 0 0 0 8 0c0-1.9-1.4-3.8-4-7.6z" fill="${INK}"/>`
    + `<path d="M10 22.5h12" stroke="${INK}" stroke-width="2" stroke-linecap="round"/>`,
  pumpOn: `<circle cx="16" cy="16" r="7.5" fill="${INK}"/><path d="M13.8 12.2v7.6l6.2-3.8z" fill="#fff"/>`,
  pumpOff: `<rect x="11" y="11" width="10" height="10" rx="1.5" fill="none" stroke="${INK}" stroke-width="2.4"/>`,
  other: `<circle cx="16" cy="16" r="4" fill="${INK}"/>`,
  event: `<path d="M16 11v8" stroke="${INK}" stroke-width="2.6" stroke-linecap="round"/>`
    + `<circle cx="16" cy="23.5" r="1.6" fill="${INK}"/>`,
};

/** The symbol of a kind as an SVG data URL: a white shape (tinted by the billboard colour) and a dark glyph. */
export function symbolUrl(kind, { running = null, fill = "#fff" } = {}) {
  const shape = SHAPES[kind] || SHAPES.other;
  const glyph = kind === "pump" ? (running ? GLYPHS.pumpOn : GLYPHS.pumpOff) : GLYPHS[kind] || GLYPHS.other;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 32 32">`
    + `<g fill="${fill}" stroke="${INK}" stroke-width="1.6" stroke-linejoin="round">${shape}</g>${glyph}</svg>`;
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

const RING = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(
  `<svg xmlns="http://www.w3.org/2000/svg" width="80" height="80" viewBox="0 0 40 40"><circle cx="20" cy="20" r="18" `
  + `fill="none" stroke="${COLOURS.forecast}" stroke-width="3.2" stroke-dasharray="6 3"/></svg>`)}`;

export const kindLabel = (kind) => t(KIND_KEYS[kind] || "kindOther");

export class SensorLayer {
  constructor(viewer, registry, { onPickSite, onPickEvent, suspended = () => false, name = (site) => site.name,
    describe = () => "" }) {
    this.viewer = viewer;
    this.registry = registry;
    this.name = name;                     // site -> its label's first line
    this.describe = describe;             // site -> the line under it
    this.source = new Cesium.CustomDataSource("ops-sensors");
    viewer.dataSources.add(this.source);
    this.selected = null;
    this.hovered = null;
    this.registered = false;
    const handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
    handler.setInputAction((click) => {
      if (suspended() || !this.source.show || !this.source.entities.values.length) return;
      const hit = this.pick(click.position);
      if (hit && hit.site !== undefined) onPickSite(hit.site);
      else if (hit && hit.event !== undefined) onPickEvent(hit.event);
    }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
    let last = 0;
    handler.setInputAction((move) => {
      const now = performance.now();
      if (now - last < HOVER_MS || !this.source.show || !this.source.entities.values.length) return;
      last = now;
      const hit = this.pick(move.endPosition);
      this.setHovered(hit && hit.site !== undefined ? hit.site : null);
    }, Cesium.ScreenSpaceEventType.MOUSE_MOVE);
  }

  pick(position) {
    const picked = this.viewer.scene.pick(position);
    const id = picked && picked.id instanceof Cesium.Entity ? picked.id.id : null;
    if (!id || !this.source.entities.contains(picked.id)) return null;
    if (id.startsWith("sensor-")) return { site: Number(id.slice(7)) };
    if (id.startsWith("forecast-ring-")) return { site: Number(id.slice(14)) };
    if (id.startsWith("ops-event-")) return { event: Number(id.slice(10)) };
    return null;
  }

  /** Draw (or redraw) the sites of a network and the events no site covers. */
  update(network) {
    const entities = this.source.entities;
    const keep = new Set();
    entities.suspendEvents();
    for (const site of network.sites.values()) {
      if (site.lon === null) continue;
      const id = `sensor-${site.id}`;
      keep.add(id);
      let entity = entities.getById(id);
      if (!entity) {
        entity = entities.add({
          id, position: Cesium.Cartesian3.fromDegrees(site.lon, site.lat, 0),
          billboard: { width: SIZE, height: SIZE, heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
            disableDepthTestDistance: Number.POSITIVE_INFINITY, verticalOrigin: Cesium.VerticalOrigin.CENTER },
          label: { show: false, font: "13px 'Noto Sans CJK SC', 'Noto Sans SC', sans-serif", showBackground: true,
            backgroundColor: Cesium.Color.fromCssColorString("rgba(20, 32, 44, 0.85)"), fillColor: Cesium.Color.WHITE,
            verticalOrigin: Cesium.VerticalOrigin.BOTTOM, pixelOffset: new Cesium.Cartesian2(0, -SIZE / 2 - 4),
            heightReference: Cesium.HeightReference.CLAMP_TO_GROUND, disableDepthTestDistance: Number.POSITIVE_INFINITY },
        });
      }
      const image = symbolUrl(site.kind, { running: site.running });
      if (entity.symbol !== image) { entity.billboard.image = image; entity.symbol = image; }
      const colour = COLOURS[site.state];
      if (entity.colour !== colour) { entity.billboard.color = Cesium.Color.fromCssColorString(colour); entity.colour = colour; }
      entity.billboard.scale = site.id === this.selected ? 1.35 : 1;
      entity.label.text = `${this.name(site)}\n${this.describe(site)}`;
      entity.label.show = site.id === this.selected || site.id === this.hovered;
      if (site.forecast) keep.add(this.ring(site).id);
    }
    for (const event of network.events.values()) {
      const coords = event.location && event.location.coordinates;
      if (!isActive(event) || !coords || network.siteOfStream(event.datastream_id) || network.site(event.thing_id)) continue;
      const id = `ops-event-${event.id}`;
      keep.add(id);
      const colour = isForecast(event) ? COLOURS.forecast : COLOURS[event.kind] || COLOURS.event;
      const entity = entities.getById(id) || entities.add({
        id, position: Cesium.Cartesian3.fromDegrees(coords[0], coords[1], 0),
        billboard: { image: symbolUrl("event"), width: SIZE, height: SIZE, heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
          disableDepthTestDistance: Number.POSITIVE_INFINITY },
      });
      entity.billboard.color = Cesium.Color.fromCssColorString(colour);
      entity.colour = colour;
    }
    for (const entity of [...entities.values]) if (!keep.has(entity.id)) entities.remove(entity);
    entities.resumeEvents();
    if (network.sites.size && !this.registered) this.register();
    this.viewer.scene.requestRender();
    // new label glyphs and images reach the texture atlas a few frames later; draw again once they have
    clearTimeout(this.redraw);
    this.redraw = setTimeout(() => this.viewer.scene.requestRender(), 300);
  }

  /** The purple ring round a site a forecast event is about: an annulus wider than the symbol, so the two
   *  billboards never overlap whatever order they draw in. */
  ring(site) {
    const id = `forecast-ring-${site.id}`;
    return this.source.entities.getById(id) || this.source.entities.add({
      id, position: Cesium.Cartesian3.fromDegrees(site.lon, site.lat, 0),
      billboard: { image: RING, width: SIZE + 18, height: SIZE + 18, heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
        disableDepthTestDistance: Number.POSITIVE_INFINITY },
    });
  }

  register() {
    this.registered = true;
    const source = this.source;
    const viewer = this.viewer;
    this.registry.register({
      id: "sensors", title: { zh: "传感器", en: "Sensors" }, order: 0, kind: "sensors", visible: true,
      show() { source.show = true; viewer.scene.requestRender(); },
      hide() { source.show = false; viewer.scene.requestRender(); },
      legend: () => ({
        kind: "sensors",
        items: [
          ...["rain", "stage", "waterlogging", "pump"].map((kind) => ({
            color: `#fff url("${symbolUrl(kind, { running: true, fill: "#dfe6ee" })}") center / contain no-repeat`,
            label: kindLabel(kind) })),
          ...Object.entries(STATE_KEYS).map(([state, key]) => ({ color: COLOURS[state], label: t(key) })),
          { color: COLOURS.forecast, label: t("opsForecast") },
        ],
      }),
    });
  }

  setSelected(siteId, network) {
    this.selected = siteId;
    if (network) this.update(network);
  }

  setHovered(siteId) {
    if (siteId === this.hovered) return;
    const label = (id) => this.source.entities.getById(`sensor-${id}`)?.label;
    const before = label(this.hovered);
    if (before) before.show = this.hovered === this.selected;
    this.hovered = siteId;
    const now = label(siteId);
    if (now) now.show = true;
    this.viewer.scene.requestRender();
  }

  /** The CSS colour a site is drawn with (for tests and the list swatches). */
  colourOf(siteId) {
    const entity = this.source.entities.getById(`sensor-${siteId}`);
    return entity ? entity.billboard.color.getValue(Cesium.JulianDate.now()).toCssHexString() : null;
  }

  /** Page coordinates of a site's symbol (ground height from the globe), or null when off screen. */
  screenPositionOf(site) {
    const scene = this.viewer.scene;
    const carto = Cesium.Cartographic.fromDegrees(site.lon, site.lat);
    const height = scene.globe.getHeight(carto) ?? site.ground;
    const p = Cesium.SceneTransforms.worldToWindowCoordinates(scene, Cesium.Cartesian3.fromDegrees(site.lon, site.lat, height));
    if (!p) return null;
    const r = scene.canvas.getBoundingClientRect();
    return { x: p.x + r.left, y: p.y + r.top };
  }

  refreshLegend() {
    if (this.registered) this.registry.refresh();
  }
}
