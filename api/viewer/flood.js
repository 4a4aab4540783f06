// The "Flood scenario" panel for emergency staff: set a storm, run the flood process as a job (OGC API -
// Processes, async), follow its progress, then see the results: the depth animation, maximum depth,
// flooded buildings and impassable roads (FloodOverlay), an impact summary, and the depth over time at
// a point picked on the map. Recent scenarios can be reopened. The sewer capacity and the river level start
// from the city's defaults (city.toml [scenarios.flood], served in /viewer-config.json): the drainage field
// shows the city's capacity and the river field (shown where the city has rivers) its normal level, with
// presets for the normal and the warning level.
import { apiKey, getJSON } from "./api.js";
import { lineChart } from "./chart.js";
import { addStrings, getLang, onLangChange, t } from "./i18n.js";
import { JobPanel } from "./jobs.js";
import { FloodOverlay } from "./flood-layers.js";

addStrings({
  zh: { drainage: "排水能力", mmPerHour: "毫米/时", riverLevel: "水位", riverNormal: "常水位", riverWarning: "警戒水位",
    riverAboveWarning: "达到或超过警戒水位", riverBelowWarning: "警戒水位", cityDefault: "城市默认", drainageShort: "排水" },
  en: { drainage: "Drainage", mmPerHour: "mm/h", riverLevel: "level", riverNormal: "Normal", riverWarning: "Warning",
    riverAboveWarning: "at or above the warning level", riverBelowWarning: "warning level", cityDefault: "city default",
    drainageShort: "drainage" },
});

const PRESETS = [
  { id: "p20", key: "presetP20", rain: 95, hours: 2 },
  { id: "p50", key: "presetP50", rain: 120, hours: 2 },
  { id: "burst", key: "presetBurst", rain: 100, hours: 1 },
];
const RESOLUTIONS = [10, 20, 30, 40, 50];
const PLAY_MS = 800;
const IMPASSABLE_M = 0.3;

const $ = (root, selector) => root.querySelector(selector);

/** Minutes of a duration input as the job stores it ("120min", "2h", "PT2H" or seconds). */
function minutesOf(value) {
  const text = String(value ?? "").trim().toLowerCase();
  const m = text.match(/^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?$/);
  if (m) return Number(m[1]) * ({ s: 1 / 60, sec: 1 / 60, m: 1, min: 1, h: 60, hr: 60, d: 1440 }[m[2] || "s"]);
  const iso = text.toUpperCase().match(/^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?$/);
  return iso ? Number(iso[1] || 0) * 60 + Number(iso[2] || 0) : null;
}

const durationText = (minutes) => (minutes === null ? "?" : minutes % 60 === 0 ? `${minutes / 60} h`
  : minutes > 90 ? `${(minutes / 60).toFixed(1)} h` : `${Math.round(minutes)} min`);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "i18n") node.dataset.i18n = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  if (attrs.i18n) node.textContent = t(attrs.i18n);
  return node;
}

const fmt = (v, digits = 0) => Number(v).toLocaleString(getLang() === "zh" ? "zh-CN" : "en",
  { maximumFractionDigits: digits, minimumFractionDigits: digits });

export class FloodPanel extends JobPanel {
  constructor(viewer, registry, element, { info } = {}) {
    super(element, "#flood-run");
    this.viewer = viewer;
    this.registry = registry;
    this.info = info;
    this.overlay = new FloodOverlay(viewer, registry);
    this.state = "idle";       // idle | running | done | failed
    this.summary = null;
    this.buildings = null;
    this.hydrograph = null;    // {lon, lat, series}
    this.picking = false;
    this.player = null;
    this.defaults = { drainage_mm_h: 0, rivers: [] };    // the city's, once /viewer-config.json is read
    this.build();
    this.defaultsReady = this.loadDefaults();
    this.handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
    this.handler.setInputAction((click) => this.picking && this.pickPoint(click.position),
      Cesium.ScreenSpaceEventType.LEFT_CLICK);
    onLangChange(() => this.renderDynamic());
    this.refreshJobs();
  }

  // -- the panel ---------------------------------------------------------------------------------------
  build() {
    const el = this.element;
    const form = h("form", { class: "flood-form", id: "flood-form", onsubmit: (e) => { e.preventDefault(); this.run(); } },
      h("div", { class: "field-label", i18n: "floodPresets" }),
      h("div", { class: "chips", id: "flood-presets" }, ...PRESETS.map((p) => h("button", {
        type: "button", class: "chip", "data-preset": p.id, onclick: () => this.applyPreset(p),
      }, h("span", { i18n: p.key }), h("small", {}, `${p.rain} mm / ${p.hours} h`)))),
      h("div", { class: "fields" },
        this.numberField("flood-rain", "rainTotal", "mm", 120, 1, 1000, 1),
        this.numberField("flood-duration", "rainDuration", "hours", 2, 0.25, 24, 0.25),
        this.numberField("flood-horizon", "horizon", "hours", 3, 0.25, 48, 0.25),
        this.numberField("flood-drainage", "drainage", "mmPerHour", 0, 0, 500, 1),
        h("label", { class: "field", id: "flood-river-field", hidden: "" }, h("span", { id: "flood-river-label" }),
          h("span", { class: "input-unit" },
            h("input", { id: "flood-river", type: "number", value: "0", min: "-10", max: "30", step: "0.1",
              disabled: "",
              oninput: () => this.renderRiver() }),
            h("em", { i18n: "m" }))),
        h("label", { class: "field" }, h("span", { i18n: "resolution" }),
          h("span", { class: "input-unit" },
            h("select", { id: "flood-resolution" }, ...RESOLUTIONS.map((r) => {
              const option = h("option", { value: String(r) }, String(r));
              if (r === 20) option.selected = true;
              return option;
            })), h("em", { i18n: "m" })))),
      h("div", { class: "chips", id: "flood-river-presets", hidden: "" },
        h("button", { type: "button", class: "chip", "data-river": "normal", onclick: () => this.setRiver("normal") },
          h("span", { i18n: "riverNormal" }), h("small", { id: "flood-river-normal" })),
        h("button", { type: "button", class: "chip", "data-river": "warning", onclick: () => this.setRiver("warning") },
          h("span", { i18n: "riverWarning" }), h("small", { id: "flood-river-warning" }))),
      h("p", { class: "muted small", id: "flood-river-note", hidden: "" }),
      h("button", { type: "submit", class: "primary", id: "flood-run", i18n: "run" }));
    el.replaceChildren(
      h("div", { class: "panel-head flood-head" },
        h("h2", { class: "flood-title" },
          h("span", { class: "flood-icon", "aria-hidden": "true" }),
          h("span", { i18n: "flood" })),
        h("button", { type: "button", class: "collapse", id: "flood-collapse", "data-i18n-title": "collapse",
          onclick: () => this.element.classList.toggle("collapsed") }, "–")),
      h("div", { class: "flood-body" },
        h("p", { class: "muted small", i18n: "floodHint" }),
        h("div", { class: "inputs-line", id: "flood-inputs-line", hidden: "" },
          h("span", { id: "flood-inputs-text" }),
          h("button", { type: "button", class: "link", id: "flood-new", i18n: "newScenario",
            onclick: () => this.showForm(true) })),
        form,
        h("div", { class: "flood-message", id: "flood-message", role: "status" }),
        h("div", { class: "progress", id: "flood-progress", hidden: "" },
          h("div", { class: "progress-track" }, h("div", { class: "progress-bar", id: "flood-progress-bar" })),
          h("div", { class: "progress-text", id: "flood-progress-text" })),
        h("section", { class: "flood-results", id: "flood-results", hidden: "" },
          h("h3", { i18n: "summary" }),
          h("div", { class: "stats", id: "flood-summary" }),
          h("h3", { i18n: "timeline" }),
          h("div", { class: "timeline" },
            h("button", { type: "button", class: "play", id: "flood-play", onclick: () => this.togglePlay() }),
            h("input", { type: "range", id: "flood-time", min: "0", max: "0", step: "1", value: "0",
              oninput: (e) => this.showFrame(Number(e.target.value)) }),
            h("output", { id: "flood-time-label" })),
          h("div", { class: "hydro-head" },
            h("h3", { i18n: "hydrograph" }),
            h("button", { type: "button", class: "link", id: "flood-pick", onclick: () => this.setPicking(!this.picking) })),
          h("div", { class: "chart-box", id: "flood-chart" })),
        h("h3", { class: "jobs-title", i18n: "recentJobs" }),
        h("ul", { class: "jobs", id: "flood-jobs" })));
    // a rain-cloud icon
    $(el, ".flood-icon").innerHTML = '<svg viewBox="0 0 24 24"><path d="M7 15a4 4 0 0 1-.6-7.95A5.5 5.5 0 0 1 17 8a3.5 3.5 0 0 1 .5 7H7z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"/><path d="M8 18l-1 2.5M12 18l-1 2.5M16 18l-1 2.5" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>';
    this.applyPreset(PRESETS[1]);
    this.renderDynamic();
  }

  // -- the city's defaults: drainage and rivers ----------------------------------------------------------
  async loadDefaults() {
    try {
      const config = await getJSON("/viewer-config.json");
      const flood = (config.scenarios && config.scenarios.flood) || {};
      this.defaults = { drainage_mm_h: flood.drainage_mm_h ?? 0, rivers: flood.rivers || [] };
    } catch (error) {
      console.warn("flood defaults:", error);
    }
    const drainage = $(this.element, "#flood-drainage");
    drainage.value = String(this.defaults.drainage_mm_h);
    drainage.title = `${t("cityDefault")} ${fmt(this.defaults.drainage_mm_h)} ${t("mmPerHour")}`;
    const rivers = this.defaults.rivers;
    $(this.element, "#flood-river-field").hidden = !rivers.length;
    $(this.element, "#flood-river-presets").hidden = !rivers.length;
    $(this.element, "#flood-river").disabled = !rivers.length;
    if (rivers.length) this.setRiver("normal");
    this.renderDynamic();
  }

  /** One level for all the city's rivers: the normal and warning levels of the first that has them. */
  riverLevels() {
    const rivers = this.defaults.rivers;
    const first = (key) => rivers.map((r) => r[key]).find((v) => v !== null && v !== undefined);
    return { normal: first("normal_level_m") ?? 0, warning: first("warning_level_m") ?? null };
  }

  /** "珠江前航道水位" / "Pearl River level" (or a plain "level" without rivers). */
  riverLabel() {
    const zh = getLang() === "zh";
    const names = [...new Set(this.defaults.rivers.map((r) => (zh && r.name_zh) || r.name))];
    return `${names.join(" / ")}${zh || !names.length ? "" : " "}${t("riverLevel")}`;
  }

  setRiver(which) {
    const levels = this.riverLevels();
    const value = which === "warning" && levels.warning !== null ? levels.warning : levels.normal;
    $(this.element, "#flood-river").value = String(value);
    this.renderRiver();
  }

  renderRiver() {
    const rivers = this.defaults.rivers;
    if (!rivers.length) return;
    $(this.element, "#flood-river-label").textContent = this.riverLabel();
    const { normal, warning } = this.riverLevels();
    const value = Number($(this.element, "#flood-river").value);
    $(this.element, "#flood-river-normal").textContent = `${fmt(normal, 1)} ${t("m")}`;
    $(this.element, "#flood-river-warning").textContent = warning === null ? "–" : `${fmt(warning, 1)} ${t("m")}`;
    $(this.element, "#flood-river-presets [data-river=warning]").disabled = warning === null;
    this.element.querySelectorAll("#flood-river-presets .chip").forEach((c) => c.classList.toggle("active",
      (c.dataset.river === "normal" && value === normal) || (c.dataset.river === "warning" && value === warning)));
    const note = $(this.element, "#flood-river-note");
    note.hidden = warning === null;
    const above = warning !== null && value >= warning;
    note.dataset.aboveWarning = String(above);
    note.textContent = warning === null ? "" : above ? `${t("riverAboveWarning")} (${fmt(warning, 1)} ${t("m")})`
      : `${t("riverBelowWarning")} ${fmt(warning, 1)} ${t("m")}`;
  }

  /** The form, or (after a run) one line naming the scenario shown with a "new scenario" link. */
  showForm(on) {
    $(this.element, "#flood-form").hidden = !on;
    $(this.element, "#flood-inputs-line").hidden = on || !this.job;
    this.renderInputsLine();
  }

  renderInputsLine() {
    const inp = (this.job && this.job.inputs) || {};
    const extra = [
      inp.drainage_mm_h != null ? `${t("drainageShort")} ${fmt(inp.drainage_mm_h)} ${t("mmPerHour")}` : null,
      inp.river_level_m != null ? `${this.riverLabel()} ${fmt(inp.river_level_m, 1)} ${t("m")}` : null].filter(Boolean);
    $(this.element, "#flood-inputs-text").textContent = this.job
      ? `${fmt(inp.rain_mm ?? 0)} mm / ${durationText(minutesOf(inp.duration))} · `
        + `${t("horizonShort")} ${durationText(this.horizonMin())} · ${fmt(inp.resolution_m)} m`
        + extra.map((e) => ` · ${e}`).join("") : "";
  }

  numberField(id, labelKey, unitKey, value, min, max, step) {
    return h("label", { class: "field" }, h("span", { i18n: labelKey }),
      h("span", { class: "input-unit" },
        h("input", { id, type: "number", value: String(value), min: String(min), max: String(max), step: String(step),
          required: "" }),
        h("em", { i18n: unitKey })));
  }

  applyPreset(preset) {
    $(this.element, "#flood-rain").value = preset.rain;
    $(this.element, "#flood-duration").value = preset.hours;
    $(this.element, "#flood-horizon").value = preset.hours + 1;
    this.element.querySelectorAll(".chip").forEach((c) => c.classList.toggle("active", c.dataset.preset === preset.id));
  }

  message(text, kind = "error") {
    const box = $(this.element, "#flood-message");
    box.textContent = text || "";
    box.className = `flood-message ${text ? kind : ""}`;
  }

  // -- running -----------------------------------------------------------------------------------------
  async run() {
    if (!apiKey()) { this.message(t("needKey")); return; }
    const hours = (id) => Number($(this.element, id).value);
    const horizon = Math.max(hours("#flood-horizon"), hours("#flood-duration"));
    const inputs = {
      rain_mm: Number($(this.element, "#flood-rain").value),
      duration: `${Math.round(hours("#flood-duration") * 60)}min`,
      horizon: `${Math.round(horizon * 60)}min`,
      resolution_m: Number($(this.element, "#flood-resolution").value),
      frame_interval_min: horizon <= 3 ? 10 : horizon <= 8 ? 20 : 30,
      drainage_mm_h: Number($(this.element, "#flood-drainage").value),
    };
    // rivers at their normal level need no input (the process holds them there); any other level raises them all
    const river = Number($(this.element, "#flood-river").value);
    const sameNormal = new Set(this.defaults.rivers.map((r) => r.normal_level_m)).size === 1;
    if (this.defaults.rivers.length && !(sameNormal && river === this.riverLevels().normal)) {
      inputs.river_level_m = river;
    }
    await this.submit("flood", inputs);
  }


  horizonMin(job = this.job) {
    const inp = (job && job.inputs) || {};
    return inp.horizon != null ? minutesOf(inp.horizon) : (minutesOf(inp.duration) ?? 0) + 60;
  }

  renderProgress() {
    const job = this.job;
    const box = $(this.element, "#flood-progress");
    if (!job) { box.hidden = true; return; }
    box.hidden = false;
    const pct = job.status === "successful" ? 100 : job.progress || 0;
    $(this.element, "#flood-progress-bar").style.width = `${pct}%`;
    box.classList.toggle("done", job.status === "successful");
    box.dataset.percent = String(pct);
    const sim = job.sim_time_s != null ? Math.round(job.sim_time_s / 60) : null;
    const horizon = this.horizonMin();
    const parts = [job.status === "accepted" ? t("queued") : `${Math.round(pct)}%`];
    if (sim !== null) parts.push(`${t("simTime")} ${sim}${horizon ? ` / ${horizon}` : ""} ${t("min")}`);
    $(this.element, "#flood-progress-text").textContent = parts.join(" · ");
  }

  // -- results -----------------------------------------------------------------------------------------
  async open(jobId) {
    this.following = null;
    try {
      const [job, summary, buildings] = await Promise.all([
        getJSON(`/ogc/jobs/${jobId}`), getJSON(`/ogc/jobs/${jobId}/results/summary`),
        getJSON(`/ogc/jobs/${jobId}/results/buildings`)]);
      this.job = job;
      this.summary = summary;
      this.buildings = buildings;
      this.hydrograph = null;
      this.setPicking(false);
      await this.overlay.load(jobId, buildings, job.inputs.flooded_depth_m ?? 0.15);
      this.state = "done";
      const slider = $(this.element, "#flood-time");
      slider.max = String(Math.max(0, this.overlay.frames.length - 1));
      slider.value = String(this.overlay.frameIndex);
      $(this.element, "#flood-results").hidden = false;
      this.showForm(false);
      this.setRunning(false);
      this.message("");
      this.renderProgress();
      this.renderDynamic();
      this.refreshJobs();
    } catch (error) {
      console.warn("flood results:", error);
      this.fail(`${t("runFailed")}: ${error.message || error}`);
    }
  }

  closeResults() {
    this.stopPlay();
    this.setPicking(false);
    this.overlay.clear();
    this.hydrograph = null;
    this.summary = null;
    this.viewer.entities.removeById("flood-point");
    $(this.element, "#flood-results").hidden = true;
  }

  showFrame(i) {
    this.overlay.setFrame(i);
    $(this.element, "#flood-time").value = String(this.overlay.frameIndex);
    this.renderTime();
  }

  togglePlay() {
    if (this.player) { this.stopPlay(); return; }
    const n = this.overlay.frames.length;
    if (n < 2) return;
    if (this.overlay.frameIndex >= n - 1) this.showFrame(0);
    this.player = setInterval(() => {
      const next = this.overlay.frameIndex + 1;
      if (next >= n) { this.stopPlay(); return; }
      this.showFrame(next);
    }, PLAY_MS);
    this.renderTime();
  }

  stopPlay() {
    clearInterval(this.player);
    this.player = null;
    this.renderTime();
  }

  renderTime() {
    const frame = this.overlay.frames[this.overlay.frameIndex];
    const label = $(this.element, "#flood-time-label");
    label.textContent = frame ? `${frame.minutes} ${t("min")}` : "";
    const play = $(this.element, "#flood-play");
    play.textContent = this.player ? "❚❚" : "▶";
    play.title = this.player ? t("pause") : t("play");
    play.setAttribute("aria-label", play.title);
  }

  renderSummary() {
    const box = $(this.element, "#flood-summary");
    if (!this.summary) { box.replaceChildren(); return; }
    const ex = this.summary.exposure || {};
    const stat = (key, value, text, unit, extra = "") => h("div", { class: `stat ${extra}`, "data-stat": key, "data-value": String(value) },
      h("div", { class: "value" }, text, unit ? h("small", {}, ` ${unit}`) : null),
      h("div", { class: "name" }, t({ buildings: "buildingsFlooded", people: "people", roads: "roadsClosed",
        depth: "maxDepth" }[key])));
    const people = Math.round(ex.people_in_flooded_buildings || 0);
    box.replaceChildren(
      stat("buildings", ex.buildings_flooded ?? 0, fmt(ex.buildings_flooded ?? 0), t("unitBuildings"), "warn"),
      stat("people", people, fmt(people), t("unitPeople")),
      stat("roads", ex.road_km_impassable ?? 0, fmt(ex.road_km_impassable ?? 0, 1), t("km"), "warn"),
      stat("depth", this.summary.max_depth_m ?? 0, fmt(this.summary.max_depth_m ?? 0, 2), t("m")));
  }

  // -- depth at a point ----------------------------------------------------------------------------------
  setPicking(on) {
    this.picking = !!on && this.state === "done";
    if (this.info) this.info.suspended = this.picking;
    this.viewer.scene.canvas.style.cursor = this.picking ? "crosshair" : "";
    this.element.classList.toggle("picking", this.picking);
    const button = $(this.element, "#flood-pick");
    if (button) button.textContent = this.picking ? t("pickCancel") : t("pickPoint");
    this.renderChart();
  }

  /** Canvas position -> ground lon/lat (the globe, not buildings: the model's water is on the ground). */
  groundAt(position) {
    const ray = this.viewer.camera.getPickRay(position);
    const cartesian = ray && this.viewer.scene.globe.pick(ray, this.viewer.scene);
    if (!cartesian) return null;
    const c = Cesium.Cartographic.fromCartesian(cartesian);
    return { lon: Cesium.Math.toDegrees(c.longitude), lat: Cesium.Math.toDegrees(c.latitude), height: c.height };
  }

  async pickPoint(position) {
    const point = this.groundAt(position);
    this.setPicking(false);
    if (!point) return;
    await this.loadHydrograph(point.lon, point.lat, point.height);
  }

  async loadHydrograph(lon, lat, height = 0) {
    const jobId = this.overlay.jobId;
    const url = `/ogc/jobs/${jobId}/hydrograph?lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}`;
    this.viewer.entities.removeById("flood-point");
    this.viewer.entities.add({
      id: "flood-point", position: Cesium.Cartesian3.fromDegrees(lon, lat, height),
      point: { pixelSize: 11, color: Cesium.Color.fromCssColorString("#ffcc00"), outlineColor: Cesium.Color.BLACK,
        outlineWidth: 2, heightReference: Cesium.HeightReference.CLAMP_TO_GROUND, disableDepthTestDistance: Infinity },
    });
    this.viewer.scene.requestRender();
    try {
      this.hydrograph = await getJSON(url);
    } catch (error) {
      this.hydrograph = { error: error.status === 400 ? t("outsideGrid") : error.message, lon, lat };
    }
    this.renderChart();
    return this.hydrograph;
  }

  renderChart() {
    const box = $(this.element, "#flood-chart");
    if (!box) return;
    const hg = this.hydrograph;
    if (!hg) {
      box.replaceChildren(h("p", { class: "muted small" }, t("pickHint")));
      return;
    }
    if (hg.error) {
      box.replaceChildren(h("p", { class: "flood-message error" }, hg.error));
      return;
    }
    const points = hg.series.map((p) => [p.t_min, p.depth_m]);
    const svg = lineChart(points, {
      xLabel: t("min"), yLabel: `${t("depthAt")} (${t("m")})`, format: (v) => String(v),
      threshold: { value: IMPASSABLE_M, label: t("impassableLine") },
      xStep: [10, 15, 20, 30, 60, 120, 180, 360].find((step) => points[points.length - 1][0] / step <= 6) || 720,
    });
    const peak = Math.max(...points.map((p) => p[1]));
    box.replaceChildren(svg, h("div", { class: "chart-caption" },
      `${hg.lat.toFixed(5)}°N ${hg.lon.toFixed(5)}°E · ${t("maxDepth")} ${fmt(peak, 2)} ${t("m")}`));
  }

  // -- recent jobs ---------------------------------------------------------------------------------------
  async refreshJobs() {
    const list = $(this.element, "#flood-jobs");
    if (!apiKey()) {
      list.replaceChildren(h("li", { class: "muted small" }, t("needKey")));
      return;
    }
    try {
      const doc = await getJSON("/ogc/jobs?processID=flood&limit=6");
      this.jobs = doc.jobs;
    } catch (error) {
      this.jobs = [];
      console.warn("recent scenarios:", error);
    }
    this.renderJobs();
  }

  renderJobs() {
    const list = $(this.element, "#flood-jobs");
    if (!apiKey()) return;
    if (!this.jobs || !this.jobs.length) {
      list.replaceChildren(h("li", { class: "muted small" }, t("noJobs")));
      return;
    }
    const statusKey = { accepted: "statusAccepted", running: "statusRunning", successful: "statusSuccessful",
      failed: "statusFailed", dismissed: "statusDismissed" };
    list.replaceChildren(...this.jobs.map((job) => {
      const when = new Date(job.created);
      const inp = job.inputs || {};
      const dur = durationText(minutesOf(inp.duration));
      const current = this.overlay.jobId === job.jobID;
      const li = h("li", { class: `job ${job.status}${current ? " current" : ""}`, "data-job": job.jobID },
        h("span", { class: "job-when" }, when.toLocaleString(getLang() === "zh" ? "zh-CN" : "en",
          { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" })),
        h("span", { class: "job-what" }, `${fmt(inp.rain_mm ?? 0)} mm / ${dur} · ${fmt(inp.resolution_m)} m`),
        h("span", { class: `job-status ${job.status}` }, t(statusKey[job.status] || job.status)));
      if (job.status === "successful" && !current) li.addEventListener("click", () => this.open(job.jobID));
      else if (job.status === "running" || job.status === "accepted") li.addEventListener("click", () => this.follow(job.jobID));
      return li;
    }));
  }

  renderDynamic() {
    $(this.element, "#flood-collapse").title = t("collapse");
    this.renderRiver();
    this.renderInputsLine();
    this.renderProgress();
    this.renderSummary();
    this.renderTime();
    this.setPicking(this.picking);
    this.renderJobs();
  }
}
