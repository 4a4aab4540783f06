// The "Evacuation scenario" panel for emergency staff: who must leave (the flood scenario's flooded buildings,
// or a zone drawn on the map), on foot or by car, by day or night, how quickly people react; run the
// `evacuation` process as a job (OGC API - Processes, async), follow its progress in simulated minutes, then
// see the results: the hazard zone, road loads animated over time, shelters filling, trapped people, routes
// (EvacuationOverlay), the evacuation curve with a cursor on the time shown, and a summary with the
// bottleneck roads. Earlier runs can be reopened.
import { apiKey, getJSON } from "./api.js";
import { onLangChange, t } from "./i18n.js";
import { JobPanel } from "./jobs.js";
import { curveChart } from "./evacuation-chart.js";
import { loadResults } from "./evacuation-data.js";
import { fmt, h, minutes, when } from "./evacuation-dom.js";
import { ZoneDrawer } from "./evacuation-draw.js";
import { EvacuationOverlay } from "./evacuation-layers.js";
import { renderSummary } from "./evacuation-summary.js";
import { viewPoint } from "./scene.js";
import "./evacuation-strings.js";

const RESPONSES = {
  immediate: { key: "evacImmediate", sub: "0", response: { distribution: "immediate" } },
  mean10: { key: "evacMean10", sub: "evacRayleigh", response: { distribution: "rayleigh", mean_s: 600 } },
  mean30: { key: "evacMean30", sub: "evacRayleigh", response: { distribution: "rayleigh", mean_s: 1800 } },
};
const HORIZONS_H = [1, 2, 3, 6];
const PLAY_MS = 120;
const PLAY_SECONDS = 15;     // one pass of the animation, whatever the horizon
const ICON = '<svg viewBox="0 0 24 24"><circle cx="13.5" cy="4.5" r="2" fill="currentColor"/><path d="M9 21l2.5-6 2.5 2.5V21M7 12.5l2.5-4 4 1 2.5 3.5 3 .5M11.5 15l1-5.5" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/><path d="M19 16h3m0 0-1.5-1.5M22 16l-1.5 1.5" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" fill="none"/></svg>';

const $ = (root, selector) => root.querySelector(selector);
const STATUS_KEYS = { accepted: "statusAccepted", running: "statusRunning", successful: "statusSuccessful",
  failed: "statusFailed", dismissed: "statusDismissed" };

function segmented(id, name, options, current, onPick) {
  return h("div", { class: "segmented evac-seg", id }, ...options.map(([value, key]) => h("button", {
    type: "button", [`data-${name}`]: value, class: value === current ? "active" : "", i18n: key,
    onclick: () => onPick(value),
  })));
}

/** Hours of a job's horizon input ("3h", "90min", "PT3H" or seconds). */
function horizonSeconds(value) {
  const text = String(value ?? "3h").trim().toLowerCase();
  const m = text.match(/^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?$/);
  if (m) return Number(m[1]) * ({ s: 1, sec: 1, m: 60, min: 60, h: 3600, hr: 3600 }[m[2] || "s"]);
  const iso = text.toUpperCase().match(/^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?$/);
  return iso ? Number(iso[1] || 0) * 3600 + Number(iso[2] || 0) * 60 : 3 * 3600;
}

export class EvacuationPanel extends JobPanel {
  constructor(viewer, registry, element, { info = null, flood = null } = {}) {
    super(element, "#evac-run");
    this.viewer = viewer;
    this.registry = registry;
    this.info = info;
    this.flood = flood;
    this.overlay = new EvacuationOverlay(viewer, registry);
    this.drawer = new ZoneDrawer(viewer, { onChange: () => this.renderZone() });
    this.state = "idle";          // idle | running | done | failed
    this.summary = null;
    this.curve = null;            // rows of curve.csv
    this.results = null;
    this.jobs = [];
    this.floodJobs = [];
    this.floodChoice = null;      // a flood job the user picked (else the one the flood panel shows)
    this.choice = { hazard: "flood", mode: "walk", time: "day", response: "mean10" };
    this.player = null;
    this.chart = null;
    this.tianhe = false;
    this.wasDrawing = false;
    this.build();
    getJSON("/viewer-config.json").then((c) => { this.tianhe = /tianhe/i.test(c.city || ""); this.renderSummary(); })
      .catch(() => {});
    // the flood scenarios may have changed while another tab was shown
    new MutationObserver(() => { if (!element.hidden) this.refreshFloodJobs(); })
      .observe(element, { attributes: true, attributeFilter: ["hidden"] });
    onLangChange(() => this.renderDynamic());
    this.refreshFloodJobs();
    this.refreshJobs();
  }

  // -- the panel ---------------------------------------------------------------------------------------
  build() {
    const form = h("form", { class: "flood-form evac-form", id: "evac-form", onsubmit: (e) => { e.preventDefault(); this.run(); } },
      h("div", { class: "field-label", i18n: "evacHazard" }),
      segmented("evac-hazard", "hazard", [["flood", "evacFromFlood"], ["polygon", "evacDrawZone"]], this.choice.hazard,
        (v) => this.pick("hazard", v)),
      h("div", { class: "evac-hazard-flood", id: "evac-flood-row" },
        h("span", { class: "input-unit" }, h("select", { id: "evac-flood-job", "aria-label": "flood job",
          onchange: (e) => { this.floodChoice = e.target.value; } })),
        h("button", { type: "button", class: "link", id: "evac-flood-refresh", i18n: "evacRefresh",
          onclick: () => this.refreshFloodJobs() })),
      h("div", { class: "evac-hazard-draw", id: "evac-draw-row", hidden: true },
        h("div", { class: "evac-draw-buttons" },
          h("button", { type: "button", class: "chip", id: "evac-draw", onclick: () => this.startDrawing() }),
          h("button", { type: "button", class: "chip", id: "evac-finish", i18n: "evacFinish", hidden: true,
            onclick: () => this.finishDrawing() }),
          h("button", { type: "button", class: "chip", id: "evac-cancel", i18n: "evacCancel", hidden: true,
            onclick: () => this.drawer.cancel() })),
        h("p", { class: "muted small", id: "evac-zone-text" })),
      h("div", { class: "evac-grid" },
        h("div", { class: "field" }, h("span", { i18n: "evacMode" }),
          segmented("evac-mode", "mode", [["walk", "evacWalk"], ["drive", "evacDrive"]], this.choice.mode,
            (v) => this.pick("mode", v))),
        h("div", { class: "field" }, h("span", { i18n: "evacTime" }),
          segmented("evac-time", "time", [["day", "evacDay"], ["night", "evacNight"]], this.choice.time,
            (v) => this.pick("time", v)))),
      h("div", { class: "field-label", i18n: "evacResponse" }),
      h("div", { class: "chips", id: "evac-response" }, ...Object.entries(RESPONSES).map(([id, r]) => h("button", {
        type: "button", class: `chip${id === this.choice.response ? " active" : ""}`, "data-response": id,
        onclick: () => this.pick("response", id),
      }, h("span", { i18n: r.key }), h("small", { "data-sub": r.sub })))),
      h("div", { class: "evac-grid" },
        h("label", { class: "field" }, h("span", { i18n: "evacHorizon" }),
          h("span", { class: "input-unit" },
            h("select", { id: "evac-horizon" }, ...HORIZONS_H.map((hours) => {
              const option = h("option", { value: `${hours}h` }, String(hours));
              if (hours === 3) option.selected = true;
              return option;
            })), h("em", { i18n: "hours" })))),
      h("label", { class: "row evac-check" }, h("input", { type: "checkbox", id: "evac-exits", class: "switch" }),
        h("span", { i18n: "evacExits" })),
      h("button", { type: "submit", class: "primary", id: "evac-run", i18n: "evacRun" }));
    this.element.replaceChildren(
      h("div", { class: "panel-head flood-head" },
        h("h2", { class: "flood-title" }, h("span", { class: "flood-icon evac-icon", "aria-hidden": "true" }),
          h("span", { i18n: "evacTitle" })),
        h("button", { type: "button", class: "collapse", id: "evac-collapse", "data-i18n-title": "collapse",
          onclick: () => this.element.classList.toggle("collapsed") }, "–")),
      h("div", { class: "flood-body" },
        h("p", { class: "muted small", i18n: "evacHint" }),
        h("div", { class: "inputs-line", id: "evac-inputs-line", hidden: true },
          h("span", { id: "evac-inputs-text" }),
          h("button", { type: "button", class: "link", id: "evac-new", i18n: "newScenario", onclick: () => this.showForm(true) })),
        form,
        h("div", { class: "flood-message", id: "evac-message", role: "status" }),
        h("div", { class: "progress", id: "evac-progress", hidden: true },
          h("div", { class: "progress-track" }, h("div", { class: "progress-bar", id: "evac-progress-bar" })),
          h("div", { class: "progress-text", id: "evac-progress-text" })),
        h("section", { class: "flood-results", id: "evac-results", hidden: true },
          h("h3", { i18n: "evacSummary" }),
          h("div", { id: "evac-summary" }),
          h("h3", { i18n: "evacTimeline" }),
          h("div", { class: "timeline" },
            h("button", { type: "button", class: "play", id: "evac-play", onclick: () => this.togglePlay() }),
            h("input", { type: "range", id: "evac-time-slider", min: "0", max: "0", step: "1", value: "0",
              oninput: (e) => this.showSample(Number(e.target.value)) }),
            h("output", { id: "evac-time-label" })),
          h("h3", { i18n: "evacCurve" }),
          h("div", { class: "chart-box", id: "evac-chart" })),
        h("h3", { class: "jobs-title", i18n: "evacRecent" }),
        h("ul", { class: "jobs", id: "evac-jobs" })));
    $(this.element, ".evac-icon").innerHTML = ICON;
    this.renderDynamic();
  }

  pick(name, value) {
    this.choice[name] = value;
    const group = { hazard: "#evac-hazard", mode: "#evac-mode", time: "#evac-time", response: "#evac-response" }[name];
    this.element.querySelectorAll(`${group} [data-${name}]`).forEach((b) => b.classList.toggle("active", b.dataset[name] === value));
    if (name === "hazard") {
      $(this.element, "#evac-flood-row").hidden = value !== "flood";
      $(this.element, "#evac-draw-row").hidden = value !== "polygon";
      if (value !== "polygon" && this.drawer.active) this.drawer.cancel();
      this.drawer.setVisible(value === "polygon");
    }
  }

  message(text, kind = "error") {
    const box = $(this.element, "#evac-message");
    box.textContent = text || "";
    box.className = `flood-message ${text ? kind : ""}`;
  }

  /** The form, or (after a run) one line naming the scenario shown with a "new scenario" link. */
  showForm(on) {
    $(this.element, "#evac-form").hidden = !on;
    $(this.element, "#evac-inputs-line").hidden = on || !this.job;
    this.drawer.setVisible(on && this.choice.hazard === "polygon");
    this.renderInputsLine();
  }

  // -- the hazard --------------------------------------------------------------------------------------
  async refreshFloodJobs() {
    if (!apiKey()) { this.floodJobs = []; this.renderFloodJobs(); return; }
    try {
      const doc = await getJSON("/ogc/jobs?processID=flood&status=successful&limit=10");
      this.floodJobs = doc.jobs;
    } catch (error) {
      console.warn("flood scenarios:", error);
      this.floodJobs = [];
    }
    this.renderFloodJobs();
  }

  /** The flood job the flood panel shows, if it finished. */
  floodShown() {
    const f = this.flood;
    if (!f) return null;
    if (f.overlay && f.overlay.jobId) return f.overlay.jobId;
    return f.job && f.job.status === "successful" ? f.job.jobID : null;
  }

  renderFloodJobs() {
    const select = $(this.element, "#evac-flood-job");
    const shown = this.floodShown();
    const jobs = [...this.floodJobs];
    if (shown && !jobs.some((j) => j.jobID === shown) && this.flood.job && this.flood.job.jobID === shown) {
      jobs.unshift(this.flood.job);
    }
    if (!jobs.length) {
      select.replaceChildren(h("option", { value: "" }, t(apiKey() ? "evacNoFlood" : "needKey")));
      select.disabled = true;
      return;
    }
    select.disabled = false;
    const wanted = jobs.some((j) => j.jobID === this.floodChoice) ? this.floodChoice
      : jobs.some((j) => j.jobID === shown) ? shown : jobs[0].jobID;
    select.replaceChildren(...jobs.map((job) => {
      const inp = job.inputs || {};
      const hours = horizonSeconds(inp.duration ?? "1h") / 3600;
      const text = `${when(job.created)} · ${fmt(inp.rain_mm ?? 0)} mm / ${fmt(hours, hours % 1 ? 1 : 0)} h`
        + `${inp.resolution_m ? ` · ${fmt(inp.resolution_m)} m` : ""}${job.jobID === shown ? ` (${t("evacFloodShown")})` : ""}`;
      return h("option", { value: job.jobID, selected: job.jobID === wanted }, text);
    }));
    select.value = wanted;
  }

  startDrawing() {
    this.message("");
    this.drawer.start();
  }

  finishDrawing() {
    if (!this.drawer.finish()) this.message(t("evacZoneTooSmall"));
  }

  renderZone() {
    const d = this.drawer;
    if (this.info && d.active !== this.wasDrawing) this.info.suspended = d.active;   // map clicks are corners now
    this.wasDrawing = d.active;
    $(this.element, "#evac-draw").textContent = t(d.closed || d.points.length ? "evacRedraw" : "evacDraw");
    $(this.element, "#evac-draw").hidden = d.active;
    $(this.element, "#evac-finish").hidden = !d.active;
    $(this.element, "#evac-cancel").hidden = !d.active;
    $(this.element, "#evac-finish").disabled = d.points.length < 3;
    this.element.classList.toggle("drawing", d.active);
    const text = $(this.element, "#evac-zone-text");
    if (d.active) text.textContent = `${t("evacDrawing")} · ${d.points.length} ${t("evacZonePoints")}`;
    else if (d.closed) text.textContent = `${d.points.length} ${t("evacZonePoints")} · ${t("evacZoneArea")} ${fmt(d.area() / 1e4, 1)} ha`;
    else text.textContent = t("evacNoZone");
    if (d.closed) this.message("");
  }

  // -- running -----------------------------------------------------------------------------------------
  /** The inputs the form describes, or null (with a message) when the hazard is missing. */
  formInputs() {
    let hazard = null;
    if (this.choice.hazard === "flood") {
      const id = $(this.element, "#evac-flood-job").value;
      if (id) hazard = { flood_job: id };
    } else if (this.drawer.polygon) {
      hazard = { polygon: this.drawer.polygon, polygon_crs: "EPSG:4326" };
    }
    if (!hazard) return null;
    return {
      hazard, mode: this.choice.mode, time_of_day: this.choice.time,
      response: RESPONSES[this.choice.response].response,
      destinations: $(this.element, "#evac-exits").checked ? "shelters_and_exits" : "shelters",
      horizon: $(this.element, "#evac-horizon").value,
    };
  }

  /** Run the scenario the form describes (or `inputs`, the process's inputs) as an async job. */
  async run(inputs = null) {
    if (!apiKey()) { this.message(t("needKey")); return null; }
    inputs = inputs || this.formInputs();
    if (!inputs) { this.message(t("evacNeedHazard")); return null; }
    return this.submit("evacuation", inputs);
  }


  renderProgress() {
    const job = this.job;
    const box = $(this.element, "#evac-progress");
    if (!job) { box.hidden = true; return; }
    box.hidden = false;
    const pct = job.status === "successful" ? 100 : job.progress || 0;
    $(this.element, "#evac-progress-bar").style.width = `${pct}%`;
    box.classList.toggle("done", job.status === "successful");
    box.dataset.percent = String(pct);
    const horizon = Math.round(horizonSeconds((job.inputs || {}).horizon) / 60);
    const parts = [job.status === "accepted" ? t("queued") : `${Math.round(pct)}%`];
    if (job.sim_time_s != null) parts.push(`${t("simTime")} ${minutes(job.sim_time_s)} / ${horizon} ${t("min")}`);
    $(this.element, "#evac-progress-text").textContent = parts.join(" · ");
  }

  // -- results -----------------------------------------------------------------------------------------
  async open(jobId) {
    this.following = null;
    try {
      const results = await loadResults(jobId);
      this.closeResults();
      this.results = results;
      this.job = results.job;
      this.summary = results.summary;
      this.curve = results.curve;
      this.drawer.setVisible(false);
      await this.overlay.load(jobId, results);
      const slider = $(this.element, "#evac-time-slider");
      slider.max = String(Math.max(0, this.overlay.times.length - 1));
      this.state = "done";
      $(this.element, "#evac-results").hidden = false;
      this.showForm(false);
      this.setRunning(false);
      this.message("");
      this.renderDynamic();
      this.setTime(this.overlay.peakTime());     // where the roads are fullest: the first thing to look at
      this.refreshJobs();
    } catch (error) {
      console.warn("evacuation results:", error);
      this.fail(`${t("runFailed")}: ${error.message || error}`);
    }
  }

  closeResults() {
    this.stopPlay();
    this.overlay.clear();
    this.results = this.summary = this.curve = this.chart = null;
    $(this.element, "#evac-results").hidden = true;
  }

  /** Show the sample at or before `seconds` on the map, the slider and the chart; returns the time shown. */
  setTime(seconds) {
    const time = this.overlay.setTime(seconds);
    $(this.element, "#evac-time-slider").value = String(this.overlay.index);
    if (this.chart) this.chart.setCursor(time);
    this.renderTime();
    return time;
  }

  showSample(i) {
    const times = this.overlay.times;
    if (!times.length) return;
    this.setTime(times[Math.max(0, Math.min(times.length - 1, i))]);
  }

  togglePlay() {
    if (this.player) { this.stopPlay(); return; }
    const n = this.overlay.times.length;
    if (n < 2) return;
    if (this.overlay.index >= n - 1) this.showSample(0);
    const step = Math.max(1, Math.round(n / (PLAY_SECONDS * 1000 / PLAY_MS)));
    this.player = setInterval(() => {
      const next = this.overlay.index + step;
      this.showSample(Math.min(next, n - 1));
      if (next >= n - 1) this.stopPlay();
    }, PLAY_MS);
    this.renderTime();
  }

  stopPlay() {
    clearInterval(this.player);
    this.player = null;
    this.renderTime();
  }

  renderTime() {
    const time = this.overlay.shownTime();
    $(this.element, "#evac-time-label").textContent = time === null ? "" : `${minutes(time)} ${t("min")}`;
    const play = $(this.element, "#evac-play");
    play.textContent = this.player ? "❚❚" : "▶";
    play.title = this.player ? t("pause") : t("play");
    play.setAttribute("aria-label", play.title);
  }

  renderSummary() {
    renderSummary($(this.element, "#evac-summary"), this.summary, {
      trapped: this.results && this.results.layers.trapped, tianhe: this.tianhe,
      onBottleneck: (b) => this.flyToLink(b.link),
    });
  }

  renderChart() {
    const box = $(this.element, "#evac-chart");
    if (!this.curve || !this.summary) { box.replaceChildren(); this.chart = null; return; }
    this.chart = curveChart(this.curve, this.summary);
    box.replaceChildren(this.chart.element);
    const time = this.overlay.shownTime();
    if (time !== null) this.chart.setCursor(time);
  }

  async flyToLink(linkId) {
    const where = this.overlay.highlightLink(linkId);
    this.element.querySelectorAll(".evac-bottlenecks li").forEach((li) => li.classList.toggle("active", li.dataset.link === String(linkId)));
    if (!where) return false;
    return viewPoint(this.viewer, where.lon, where.lat, 0, { range: Math.max(220, where.span * 111000 * 2.5), pitchDeg: -50 });
  }

  renderInputsLine() {
    const inp = (this.job && this.job.inputs) || {};
    const hazard = inp.hazard || {};
    const response = inp.response || {};
    const resp = response.distribution === "rayleigh" && response.mean_s
      ? `${t("evacResponse")} ${fmt(response.mean_s / 60)} ${t("min")}` : t("evacImmediate");
    $(this.element, "#evac-inputs-text").textContent = this.job ? [
      t(hazard.flood_job ? "evacHazardFlood" : "evacHazardPolygon"), t(inp.mode === "drive" ? "evacDrive" : "evacWalk"),
      t(inp.time_of_day === "night" ? "evacNight" : "evacDay"), resp,
      `${t("evacHorizonShort")} ${fmt(horizonSeconds(inp.horizon) / 3600, 1)} ${t("hours")}`].join(" · ") : "";
  }

  // -- recent jobs -------------------------------------------------------------------------------------
  async refreshJobs() {
    if (!apiKey()) { this.jobs = []; this.renderJobs(); return; }
    try {
      this.jobs = (await getJSON("/ogc/jobs?processID=evacuation&limit=6")).jobs;
    } catch (error) {
      this.jobs = [];
      console.warn("recent evacuations:", error);
    }
    this.renderJobs();
  }

  renderJobs() {
    const list = $(this.element, "#evac-jobs");
    if (!apiKey()) { list.replaceChildren(h("li", { class: "muted small" }, t("needKey"))); return; }
    if (!this.jobs.length) { list.replaceChildren(h("li", { class: "muted small" }, t("evacNoJobs"))); return; }
    list.replaceChildren(...this.jobs.map((job) => {
      const inp = job.inputs || {};
      const current = this.overlay.jobId === job.jobID;
      const what = [t((inp.hazard || {}).flood_job ? "evacHazardFlood" : "evacHazardPolygon"),
        t(inp.mode === "drive" ? "evacDrive" : "evacWalk"), t(inp.time_of_day === "night" ? "evacNight" : "evacDay")];
      const li = h("li", { class: `job ${job.status}${current ? " current" : ""}`, "data-job": job.jobID },
        h("span", { class: "job-when" }, when(job.created)),
        h("span", { class: "job-what" }, what.join(" · ")),
        h("span", { class: `job-status ${job.status}` }, t(STATUS_KEYS[job.status] || job.status)));
      if (job.status === "successful" && !current) li.addEventListener("click", () => this.open(job.jobID));
      else if (job.status === "running" || job.status === "accepted") li.addEventListener("click", () => this.follow(job.jobID));
      return li;
    }));
  }

  renderDynamic() {
    $(this.element, "#evac-collapse").title = t("collapse");
    this.element.querySelectorAll("#evac-response small[data-sub]").forEach((s) => {
      s.textContent = s.dataset.sub === "0" ? `0 ${t("min")}` : t(s.dataset.sub);
    });
    this.renderZone();
    this.renderFloodJobs();
    this.renderInputsLine();
    this.renderProgress();
    this.renderSummary();
    this.renderChart();
    this.renderTime();
    this.overlay.relabel();
    this.renderJobs();
  }
}
