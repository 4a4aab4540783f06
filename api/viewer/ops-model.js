// The sensor network as the operations view sees it: sites (SensorThings Things) with their Datastreams,
// latest readings, active alert events, and each site's state (normal, warning, alarm, offline).
// No DOM and no Cesium here.
//
// A site's level is the worse of (a) the server's alert events still active on its Datastreams (they carry
// the hysteresis: a value back in the dead band keeps its event) and (b) its latest values against the
// thresholds (so an event an operator closed while the value is still high does not turn the site green).
// A site is offline when its main Datastream has no reading, or none heard for max(15 min, 3 × the last
// interval between readings). "Heard" is the later of the reading's phenomenonTime and the moment it
// arrived here, so a time-compressed storm replay (old phenomenonTimes arriving live) stays online.
export const STATES = ["normal", "warning", "alarm", "offline"];
export const STALE_MIN_MS = 15 * 60 * 1000;
const THRESHOLDS = "twin:thresholds";
const TRUTH = "OM_TruthObservation";
const RANK = { normal: 0, warning: 1, alarm: 2 };
const ACTIVE = new Set(["open", "acknowledged"]);
const KEEP_CLOSED = 200;            // closed events kept in memory over a long session

/** A forecast (nowcast) event: its kind starts with "forecast" ("forecast-warning", "forecast-alarm"), or it
 *  carries `forecast` (true, or the run's details). */
export const isForecast = (event) => !!event && (!!event.forecast
  || String(event.kind || "").toLowerCase().startsWith("forecast"));

/** The threshold level an event is about: "warning" | "alarm" | null (unknown kinds). */
export const levelOfEvent = (event) => {
  const level = String(event.kind || "").replace(/^forecast-?/i, "");
  return level === "warning" || level === "alarm" ? level : null;
};
export const isActive = (event) => ACTIVE.has(event.state);

/** A phenomenonTime (instant or "start/end" interval) as epoch ms of its end. */
export function timeOf(text) {
  if (!text) return NaN;
  const parts = String(text).split("/");
  return Date.parse(parts[parts.length - 1]);
}

/** The level a value reaches against thresholds, without hysteresis. */
export function levelOf(value, thresholds) {
  if (!thresholds || typeof value !== "number" || !Number.isFinite(value)) return "normal";
  const below = thresholds.direction === "below";
  const reached = (level) => level !== null && level !== undefined && (below ? value <= level : value >= level);
  if (reached(thresholds.alarm)) return "alarm";
  if (reached(thresholds.warning)) return "warning";
  return "normal";
}

const worse = (a, b) => (RANK[b] > RANK[a] ? b : a);

function streamOf(raw, thingId) {
  const props = raw.properties || {};
  const unit = raw.unitOfMeasurement || {};
  return {
    id: raw["@iot.id"], thingId, name: raw.name || `#${raw["@iot.id"]}`, key: props["twin:key"] || null,
    unit: unit.symbol || "", unitName: unit.name || "",
    thresholds: props[THRESHOLDS] ? { hysteresis: 0, direction: "above", ...props[THRESHOLDS] } : null,
    truth: String(raw.observationType || "").endsWith(TRUTH),
    latest: null,            // {time, timeText, value, heard}
    interval: null,          // ms between the last two readings seen
  };
}

function siteOf(raw) {
  const props = raw.properties || {};
  const loc = (raw.Locations || []).map((l) => l.location).find((g) => g && g.type === "Point");
  const streams = (raw.Datastreams || []).map((d) => streamOf(d, raw["@iot.id"]));
  const measured = streams.filter((s) => !s.truth);
  const main = measured.find((s) => s.thresholds) || measured[0] || streams[0] || null;
  const status = streams.find((s) => s.truth) || null;
  return {
    id: raw["@iot.id"], key: props["twin:key"] || null, name: raw.name || `#${raw["@iot.id"]}`,
    kind: props.kind || "other", lon: loc ? loc.coordinates[0] : null, lat: loc ? loc.coordinates[1] : null,
    ground: typeof props.ground_m === "number" ? props.ground_m : 0,
    feature: props["twin:layer"] ? { layer: props["twin:layer"], id: props["twin:feature"] } : null,
    streams, main: main ? main.id : null, status: status ? status.id : null,
    state: "offline", level: "normal", forecast: false, running: null,
  };
}

export class SensorNetwork {
  constructor() {
    this.sites = new Map();      // thing id -> site
    this.streams = new Map();    // datastream id -> stream
    this.events = new Map();     // event id -> event JSON
  }

  /** Replace the sites with these Things (expanded with Locations and Datastreams); keeps known readings. */
  load(things) {
    const old = this.streams;
    this.sites = new Map();
    this.streams = new Map();
    for (const raw of things) {
      const site = siteOf(raw);
      this.sites.set(site.id, site);
      for (const s of site.streams) {
        const before = old.get(s.id);
        if (before) Object.assign(s, { latest: before.latest, interval: before.interval });
        this.streams.set(s.id, s);
      }
    }
  }

  site(id) { return this.sites.get(id) || null; }
  stream(id) { return this.streams.get(id) || null; }
  siteOfStream(id) { const s = this.streams.get(id); return s ? this.sites.get(s.thingId) : null; }

  /** Latest items ({datastream, phenomenonTime, result}); `arrived` is the time they came (null: a snapshot).
   *  Returns the ids of Datastreams this network does not know (a site added since it was loaded). */
  applyLatest(items, arrived = null) {
    const unknown = [];
    for (const item of items) {
      const stream = this.streams.get(item.datastream);
      if (!stream) { unknown.push(item.datastream); continue; }
      const time = timeOf(item.phenomenonTime);
      const prev = stream.latest;
      if (prev && (time < prev.time || (time === prev.time && arrived === null))) continue;   // nothing new
      if (prev && time > prev.time) stream.interval = time - prev.time;
      stream.latest = { time, timeText: item.phenomenonTime, value: item.result, observation: item.observation,
        heard: Math.max(time, arrived ?? -Infinity) };
    }
    return unknown;
  }

  setEvents(events) {
    this.events = new Map(events.map((e) => [e.id, e]));
  }

  /** One event changed (opened, escalated, acknowledged, closed). */
  applyEvent(event) {
    this.events.set(event.id, event);
    const closed = [...this.events.values()].filter((e) => !isActive(e));
    if (closed.length > KEEP_CLOSED) {
      closed.sort((a, b) => a.id - b.id).slice(0, closed.length - KEEP_CLOSED).forEach((e) => this.events.delete(e.id));
    }
  }

  /** Recompute every site's state at `now` (epoch ms). */
  refresh(now = Date.now()) {
    const eventLevel = new Map();      // datastream id -> level from active events
    const forecastSites = new Set();
    for (const e of this.events.values()) {
      if (!isActive(e)) continue;
      const site = this.siteOfStream(e.datastream_id) || this.sites.get(e.thing_id);
      if (isForecast(e)) { if (site) forecastSites.add(site.id); continue; }
      if (e.kind in RANK) eventLevel.set(e.datastream_id, worse(eventLevel.get(e.datastream_id) || "normal", e.kind));
    }
    for (const site of this.sites.values()) {
      let level = "normal";
      for (const s of site.streams) {
        level = worse(level, eventLevel.get(s.id) || "normal");
        if (s.latest && s.thresholds) level = worse(level, levelOf(s.latest.value, s.thresholds));
      }
      const status = site.status !== null ? this.streams.get(site.status) : null;
      site.running = status && status.latest ? !!status.latest.value : null;
      site.level = level;
      site.forecast = forecastSites.has(site.id);
      site.state = this.isStale(this.streams.get(site.main), now) ? "offline" : level;
    }
  }

  isStale(stream, now = Date.now()) {
    if (!stream || !stream.latest) return true;
    const limit = Math.max(STALE_MIN_MS, 3 * (stream.interval || 0));
    return now - stream.latest.heard > limit;
  }

  counts() {
    const out = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const site of this.sites.values()) out[site.state] += 1;
    return out;
  }

  /** Active events first, each group newest first. */
  eventList() {
    const opened = (e) => Date.parse(e.opened_at || e.time || "") || 0;
    return [...this.events.values()].sort((a, b) =>
      (isActive(b) - isActive(a)) || (opened(b) - opened(a)) || (b.id - a.id));
  }

  /** Sites worst first (alarm, warning, offline, normal), then by name. */
  siteList() {
    const order = { alarm: 0, warning: 1, offline: 2, normal: 3 };
    return [...this.sites.values()].sort((a, b) => (order[a.state] - order[b.state]) || a.name.localeCompare(b.name));
  }
}
