// The live operations view, "one map": the sensor network on the map coloured by state, counters per state,
// the alert events with Acknowledge / Close, and a sensor's recent readings against its thresholds. The
// sites come from SensorThings (/sta/v1.1/Things); everything after that arrives over the /live WebSocket.
//
// For tests, window.twin.ops has: ready (resolves after the first snapshot), connected, sensors(), counts(),
// events(), select(datastreamId) -> the chart data, selectSite(thingId), chart, layer (colourOf,
// screenPositionOf), live (drop() to force a reconnect).
import { getJSON } from "./api.js";
import { getLang, onLangChange, t } from "./i18n.js";
import { timeChart } from "./ops-chart.js";
import { EventList, formatTime, formatValue, h } from "./ops-events.js";
import { COLOURS, SensorLayer, kindLabel, symbolUrl } from "./ops-layer.js";
import { LiveSocket } from "./ops-live.js";
import { SensorNetwork, STATES, isActive, timeOf } from "./ops-model.js";
import { STATE_KEYS } from "./ops-strings.js";

const THINGS_URL = "/sta/v1.1/Things?$top=1000&$expand=Locations($select=location),"
  + "Datastreams($select=id,name,unitOfMeasurement,observationType,properties)";
const WINDOW_MS = 6 * 3600 * 1000;
const CHART_TOP = 720;
const TICK_MS = 15000;
const FLY_RANGE_M = 1200;
const RELOAD_GAP_MS = 5000;
const STREAM_KEYS = {
  zh: { intensity: "雨强", accumulation: "累计雨量", stage: "河道水位", depth: "积水深度", status: "运行状态",
    flow: "抽排流量", sump: "前池水位" },
  en: { intensity: "Intensity", accumulation: "Accumulation", stage: "Stage", depth: "Water depth", status: "Running",
    flow: "Flow", sump: "Sump level" },
};
const FEATURE_KEYS = { roads: "featRoads", buildings: "featBuildings" };

const $ = (root, selector) => root.querySelector(selector);

export class OpsPanel {
  constructor(viewer, registry, element, options = {}) {
    Object.assign(this, { viewer, registry, element, options });
    this.info = options.info || null;
    this.network = new SensorNetwork();
    this.filter = null;              // a state the sensor list is narrowed to
    this.selected = null;            // {site, datastream}
    this.chartData = null;           // {datastream, unit, thresholds, truth, series: [{time, timeText, value}]}
    this.chartToken = 0;
    this.featureCache = new Map();
    this.lastReload = 0;
    this.loadError = false;
    this.ready = new Promise((resolve) => { this.resolveReady = resolve; });
    this.layer = new SensorLayer(viewer, registry, {
      onPickSite: (id) => { this.showTab(); this.selectSite(id); },
      onPickEvent: (id) => { this.showTab(); this.focusEvent(this.network.events.get(id)); },
      suspended: () => !!(this.info && this.info.suspended),
      name: (site) => this.siteName(site), describe: (site) => this.describe(site),
    });
    this.build();
    this.eventList = new EventList($(element, "#ops-events"), this.network, {
      siteName: (site) => this.siteName(site), onFocus: (e) => this.focusEvent(e),
      onMessage: (text, kind) => this.message(text, kind), onChange: () => this.changed(),
    });
    onLangChange(() => this.renderAll());
    this.renderAll();
    this.start();
  }

  // -- data ----------------------------------------------------------------------------------------------
  async start() {
    await this.loadNetwork();
    this.live = new LiveSocket("/live", { onMessage: (m) => this.receive(m), onStatus: () => this.renderConnection() });
    setInterval(() => this.tick(), TICK_MS);
  }

  async loadNetwork() {
    this.lastReload = Date.now();
    try {
      const things = [];
      let url = THINGS_URL;
      while (url) {
        const page = await getJSON(url);
        things.push(...page.value);
        const next = page["@iot.nextLink"];
        url = next ? (({ pathname, search }) => pathname + search)(new URL(next, location.href)) : null;
      }
      this.network.load(things);
      this.loadError = false;
      if (this.live) this.network.applyLatest((await getJSON("/live/latest")).latest, null);   // a site added later
    } catch (error) {
      console.warn("sensor network:", error);
      this.loadError = true;
    }
    this.changed();
  }

  receive(message) {
    if (message.type === "snapshot") {
      this.network.applyLatest(message.latest || [], null);
      this.network.setEvents(message.events || []);
      this.loadClosedEvents();
      if (this.selected) this.select(this.selected.datastream);   // readings missed while disconnected
      this.resolveReady(true);
    } else if (message.type === "latest") {
      const unknown = this.network.applyLatest(message.items || [], Date.now());
      if (unknown.length && Date.now() - this.lastReload > RELOAD_GAP_MS) this.loadNetwork();
      this.appendToChart(message.items || []);
    } else if (message.type === "event" && message.event) {
      this.network.applyEvent(message.event);
    } else {
      return;
    }
    this.changed();
  }

  /** The most recent closed events, for the list's history (the snapshot holds the active ones). */
  async loadClosedEvents() {
    try {
      const doc = await getJSON("/live/events?state=closed&limit=20");
      for (const e of doc.events) if (!this.network.events.has(e.id)) this.network.applyEvent(e);
      this.changed();
    } catch (error) {
      console.warn("closed events:", error);
    }
  }

  /** Sites go stale with no message at all: redraw when a state changed with time alone. */
  tick() {
    const states = () => [...this.network.sites.values()].map((s) => s.state).join();
    const before = states();
    this.network.refresh();
    if (states() !== before) this.changed();
  }

  /** Recompute states and redraw what depends on them. */
  changed() {
    this.network.refresh();
    this.layer.update(this.network);
    this.renderCounts();
    this.eventList.render();
    this.renderSensors();
    this.renderDetail();
  }

  // -- selection and the chart -------------------------------------------------------------------------------
  selectSite(siteId) {
    const site = this.network.site(siteId);
    return site && site.main !== null ? this.select(site.main) : Promise.resolve(null);
  }

  /** Open a Datastream's detail: latest value, linked feature, its recent readings. Resolves to the chart data. */
  async select(datastreamId) {
    const stream = this.network.stream(Number(datastreamId));
    if (!stream) return null;
    const site = this.network.site(stream.thingId);
    this.selected = { site: site.id, datastream: stream.id };
    this.layer.setSelected(site.id, this.network);
    const token = ++this.chartToken;
    this.chartData = null;
    this.renderDetail();
    this.loadFeature(site);
    const url = `/sta/v1.1/Datastreams(${stream.id})/Observations?$orderby=${encodeURIComponent("phenomenonTime desc")}`
      + `&$top=${CHART_TOP}&$select=phenomenonTime,result`;
    let series = [];
    try {
      const doc = await getJSON(url);
      series = doc.value.map((o) => ({ time: timeOf(o.phenomenonTime), timeText: o.phenomenonTime, value: o.result })).reverse();
    } catch (error) {
      console.warn("observations:", error);
    }
    if (token !== this.chartToken) return this.chart;
    const end = series.length ? series[series.length - 1].time : 0;
    this.chartData = { datastream: stream.id, unit: stream.unit, thresholds: stream.thresholds, truth: stream.truth,
      series: series.filter((p) => p.time >= end - WINDOW_MS) };
    this.renderDetail();
    return this.chart;
  }

  /** Bring the panel forward (a click on the map while another tab is shown). */
  showTab() {
    if (window.twin && window.twin.tabs) window.twin.tabs.show("ops");
    this.element.classList.remove("collapsed");
  }

  appendToChart(items) {
    const data = this.chartData;
    if (!data) return;
    for (const item of items) {
      if (item.datastream !== data.datastream) continue;
      const time = timeOf(item.phenomenonTime);
      const last = data.series[data.series.length - 1];
      if (last && time <= last.time) continue;
      data.series.push({ time, timeText: item.phenomenonTime, value: item.result });
      data.series = data.series.filter((p) => p.time >= time - WINDOW_MS);
    }
  }

  clearSelection() {
    this.selected = null;
    this.chartData = null;
    this.chartToken += 1;
    this.layer.setSelected(null, this.network);
    this.renderDetail();
  }

  /** Fly to an event's site (or its place) and open that site's detail. */
  focusEvent(event) {
    if (!event) return;
    const site = this.network.siteOfStream(event.datastream_id) || this.network.site(event.thing_id);
    const coords = site && site.lon !== null ? [site.lon, site.lat] : event.location && event.location.coordinates;
    if (coords) this.flyTo(coords[0], coords[1], site ? site.ground : 0);
    if (site) this.select(this.network.stream(event.datastream_id) ? event.datastream_id : site.main);
  }

  flyTo(lon, lat, height = 0) {
    const centre = Cesium.Cartesian3.fromDegrees(lon, lat, height);
    const offset = new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-45), FLY_RANGE_M);
    this.flight = new Promise((resolve) => this.viewer.camera.flyToBoundingSphere(new Cesium.BoundingSphere(centre, 1),
      { offset, duration: 1.2, complete: () => resolve(true), cancel: () => resolve(false) }));
    return this.flight;
  }

  /** The twin feature a site is bound to (name from OGC API Features), shown in the detail. */
  async loadFeature(site) {
    const f = site.feature;
    if (!f || this.featureCache.has(`${f.layer}/${f.id}`)) return;
    this.featureCache.set(`${f.layer}/${f.id}`, null);
    try {
      const doc = await getJSON(`/ogc/collections/${encodeURIComponent(f.layer)}/items/${encodeURIComponent(f.id)}`);
      this.featureCache.set(`${f.layer}/${f.id}`, doc.properties || {});
      this.renderDetail();
    } catch (error) {
      console.warn("twin feature:", error);
    }
  }

  showFeature(site) {
    const f = site.feature;
    const props = this.featureCache.get(`${f.layer}/${f.id}`);
    const layer = this.registry.get(f.layer);
    if (this.info && layer && typeof layer.select === "function" && props) this.info.show(layer, props);
    this.flyTo(site.lon, site.lat, site.ground);
  }

  // -- text ------------------------------------------------------------------------------------------------
  siteName(site) {
    const n = site.key && site.key.match(/-(\d+)$/);
    return getLang() === "zh" && n && site.kind !== "other" ? `${kindLabel(site.kind)} ${n[1]}` : site.name;
  }

  streamName(stream) {
    const suffix = stream.key ? stream.key.split("/").pop() : null;
    return STREAM_KEYS[getLang()][suffix] || stream.name;
  }

  valueText(stream) {
    if (!stream || !stream.latest) return t("opsNoReading");
    return `${formatValue(stream.latest.value)}${stream.unit && !stream.truth ? ` ${stream.unit}` : ""}`;
  }

  describe(site) {
    const parts = [this.valueText(this.network.stream(site.main)), t(STATE_KEYS[site.state])];
    if (site.kind === "pump" && site.running !== null) parts.push(site.running ? t("opsRunning") : t("opsStopped"));
    if (site.forecast) parts.push(t("opsForecast"));
    return parts.join(" · ");
  }

  message(text, kind = "error") {
    const box = $(this.element, "#ops-message");
    box.textContent = text || "";
    box.className = `flood-message ${text ? kind : ""}`;
  }

  // -- the panel ---------------------------------------------------------------------------------------------
  build() {
    const el = this.element;
    el.replaceChildren(
      h("div", { class: "panel-head flood-head" },
        h("h2", { class: "flood-title" }, h("span", { class: "flood-icon ops-icon", "aria-hidden": "true" }),
          h("span", { id: "ops-title" })),
        h("span", { class: "ops-conn connecting", id: "ops-conn", role: "status" }, h("i"), h("span", { id: "ops-conn-text" })),
        h("button", { type: "button", class: "collapse", id: "ops-collapse",
          onclick: () => this.element.classList.toggle("collapsed") }, "–")),
      h("div", { class: "flood-body" },
        h("p", { class: "muted small", id: "ops-hint" }),
        h("div", { class: "ops-counts", id: "ops-counts" }),
        h("div", { class: "flood-message", id: "ops-message", role: "alert" }),
        h("section", { class: "ops-detail", id: "ops-detail", hidden: "" }),
        h("h3", { class: "ops-h" }, h("span", { id: "ops-events-title" }), h("span", { class: "ops-n", id: "ops-events-n" })),
        h("ul", { class: "ops-events", id: "ops-events" }),
        h("h3", { class: "ops-h" }, h("span", { id: "ops-sensors-title" }),
          h("button", { type: "button", class: "link", id: "ops-filter-clear", hidden: "",
            onclick: () => this.setFilter(null) })),
        h("ul", { class: "ops-sensors", id: "ops-sensors" })));
    // a signal-mast icon
    $(el, ".ops-icon").innerHTML = '<svg viewBox="0 0 24 24"><path d="M12 11v10M9 21h6" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/><circle cx="12" cy="9" r="2" fill="currentColor"/><path d="M7.8 4.8a6 6 0 0 0 0 8.4M16.2 4.8a6 6 0 0 1 0 8.4M5 2.5a9.5 9.5 0 0 0 0 13M19 2.5a9.5 9.5 0 0 1 0 13" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round"/></svg>';
  }

  renderAll() {
    $(this.element, "#ops-title").textContent = t("opsTitle");
    $(this.element, "#ops-hint").textContent = t("opsHint");
    $(this.element, "#ops-collapse").title = t("collapse");
    $(this.element, "#ops-events-title").textContent = t("opsEvents");
    $(this.element, "#ops-sensors-title").textContent = t("opsSensors");
    $(this.element, "#ops-filter-clear").textContent = t("opsAll");
    this.renderConnection();
    this.changed();
    this.layer.refreshLegend();
  }

  renderConnection() {
    const status = this.live ? this.live.status : "connecting";
    const box = $(this.element, "#ops-conn");
    box.className = `ops-conn ${status}`;
    box.dataset.status = status;
    let text = t({ open: "opsConnected", connecting: "opsConnecting", closed: "opsDisconnected" }[status]);
    if (status === "closed" && this.live.retryAt) {
      text += ` · ${Math.max(1, Math.round((this.live.retryAt - Date.now()) / 1000))} ${t("opsRetry")}`;
    }
    $(this.element, "#ops-conn-text").textContent = text;
  }

  renderCounts() {
    const counts = this.network.counts();
    $(this.element, "#ops-counts").replaceChildren(...STATES.map((state) => h("button", {
      type: "button", class: `ops-count ${state}${this.filter === state ? " active" : ""}`, "data-state": state,
      title: state === "offline" ? t("opsStaleHint") : null,
      "data-value": counts[state], onclick: () => this.setFilter(this.filter === state ? null : state),
    }, h("span", { class: "value" }, String(counts[state])), h("span", { class: "name" }, t(STATE_KEYS[state])))));
    const active = this.network.eventList().filter(isActive).length;
    $(this.element, "#ops-events-n").textContent = active ? String(active) : "";
  }

  /** Narrow the sensor list to one state (a counter click), or show all (null). */
  setFilter(state) {
    this.filter = state;
    this.renderCounts();
    this.renderSensors();
  }

  renderSensors() {
    const list = $(this.element, "#ops-sensors");
    $(this.element, "#ops-filter-clear").hidden = !this.filter;
    if (!this.network.sites.size) {
      list.replaceChildren(h("li", { class: "muted small empty" }, this.loadError ? t("opsLoadFailed") : t("opsNoSensors")));
      return;
    }
    const sites = this.network.siteList().filter((s) => !this.filter || s.state === this.filter);
    list.replaceChildren(...sites.map((site) => h("li", {
      class: `ops-sensor ${site.state}${this.selected && this.selected.site === site.id ? " current" : ""}`,
      "data-site": site.id, "data-state": site.state, "data-kind": site.kind, onclick: () => this.selectSite(site.id),
    },
    h("img", { class: "ops-symbol", alt: "", src: symbolUrl(site.kind, { running: site.running, fill: COLOURS[site.state] }) }),
    h("span", { class: "ops-sensor-name" }, this.siteName(site),
      site.forecast ? h("span", { class: "ev-kind forecast" }, t("opsForecast")) : null),
    h("span", { class: "ops-sensor-value" }, this.valueText(this.network.stream(site.main))))));
  }

  renderDetail() {
    const box = $(this.element, "#ops-detail");
    const sel = this.selected;
    const site = sel && this.network.site(sel.site);
    const stream = sel && this.network.stream(sel.datastream);
    if (!site || !stream) { box.hidden = true; box.replaceChildren(); return; }
    box.hidden = false;
    box.dataset.datastream = String(stream.id);
    box.dataset.site = String(site.id);
    const latest = stream.latest;
    const feature = site.feature;
    const props = feature && this.featureCache.get(`${feature.layer}/${feature.id}`);
    const featureName = props && props.name ? props.name : feature && feature.id;
    box.replaceChildren(...[
      h("div", { class: "ops-detail-head" },
        h("img", { class: "ops-symbol", alt: "", src: symbolUrl(site.kind, { running: site.running, fill: COLOURS[site.state] }) }),
        h("div", { class: "ops-detail-title" }, h("strong", {}, this.siteName(site)),
          h("small", {}, `${kindLabel(site.kind)} · ${site.key || `#${site.id}`}`)),
        h("span", { class: `ops-badge ${site.state}`, "data-state": site.state }, t(STATE_KEYS[site.state])),
        h("button", { type: "button", class: "close", title: t("close"), onclick: () => this.clearSelection() }, "×")),
      site.streams.length > 1 ? h("div", { class: "ops-streams" }, ...site.streams.map((s) => h("button", {
        type: "button", class: `chip${s.id === stream.id ? " active" : ""}`, "data-datastream": s.id,
        onclick: () => this.select(s.id) }, this.streamName(s)))) : null,
      h("div", { class: "ops-latest" },
        h("span", { class: "muted" }, `${this.streamName(stream)} · ${t("opsLatest")}`),
        h("b", { id: "ops-latest-value" }, this.valueText(stream)),
        h("span", { class: "muted", id: "ops-latest-time" }, latest ? formatTime(latest.time) : "")),
      feature ? h("div", { class: "ops-feature" }, h("span", { class: "muted" }, `${t("opsFeature")} `),
        h("button", { type: "button", class: "link", "data-layer": feature.layer, "data-feature": feature.id,
          onclick: () => this.showFeature(site) },
        `${FEATURE_KEYS[feature.layer] ? t(FEATURE_KEYS[feature.layer]) : feature.layer} · ${featureName}`)) : null,
      h("div", { class: "chart-box", id: "ops-chart" }, this.chartElement(stream))].filter(Boolean));
  }

  chartElement(stream) {
    const data = this.chartData;
    if (!data || data.datastream !== stream.id) return h("p", { class: "muted small" }, t("opsLoadingChart"));
    if (!data.series.length) return h("p", { class: "muted small" }, t("opsNoData"));
    const levelLabels = { warning: t("opsWarnLine"), alarm: t("opsAlarmLine") };
    return timeChart(data.series, { thresholds: data.thresholds, levelLabels, unit: data.truth ? "" : data.unit,
      step: data.truth, format: data.truth ? (v) => (v ? t("opsRunning") : t("opsStopped")) : (v) => formatValue(v) });
  }

  // -- for tests ---------------------------------------------------------------------------------------------
  get connected() { return !!this.live && this.live.status === "open"; }

  sensors() {
    return [...this.network.sites.values()].map((site) => {
      const main = this.network.stream(site.main);
      return { id: site.id, key: site.key, name: site.name, kind: site.kind, state: site.state, level: site.level,
        value: main && main.latest ? main.latest.value : null, time: main && main.latest ? main.latest.timeText : null,
        unit: main ? main.unit : "", datastream: site.main, running: site.running, forecast: site.forecast,
        lon: site.lon, lat: site.lat, ground: site.ground };
    });
  }

  counts() { return this.network.counts(); }

  events() { return this.eventList.shown.map((e) => ({ ...e })); }

  get chart() {
    const data = this.chartData;
    return data && { datastream: data.datastream, unit: data.unit, thresholds: data.thresholds,
      series: data.series.map((p) => ({ phenomenonTime: p.timeText, value: p.value })) };
  }
}
