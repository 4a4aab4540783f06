// The summary of an evacuation run for the panel: who must leave, who got out, who is trapped (and why),
// clearance times, shelters, people the road data does not reach, and the bottleneck roads (click: fly there).
import { t } from "./i18n.js";
import { fmt, h, minutes, tf } from "./evacuation-dom.js";
import { REASON_KEYS } from "./evacuation-strings.js";

function stat(key, value, text, unit, name, extra = "") {
  return h("div", { class: `stat ${extra}`, "data-stat": key, "data-value": value === null ? "" : String(value) },
    h("div", { class: "value" }, text, unit ? h("small", {}, ` ${unit}`) : null),
    h("div", { class: "name" }, name));
}

function clearanceStats(clearance = {}) {
  return h("div", { class: "evac-clearance" }, ...["50", "90", "100"].map((share) => {
    const m = minutes(clearance[share]);
    return stat(`clearance-${share}`, m, m === null ? t("evacNotReached") : fmt(m), m === null ? "" : t("min"),
      `${t("evacClearance")} ${share}%`, m === null ? "muted-value" : "");
  }));
}

function trappedReasons(trapped) {
  const by = new Map();
  for (const f of (trapped && trapped.features) || []) {
    by.set(f.properties.reason, (by.get(f.properties.reason) || 0) + (f.properties.persons || 0));
  }
  if (!by.size) return null;
  return h("ul", { class: "evac-reasons" }, ...[...by].sort((a, b) => b[1] - a[1]).map(([reason, persons]) =>
    h("li", { "data-reason": reason }, h("span", {}, t(REASON_KEYS[reason] || "unknown")),
      h("b", {}, `${fmt(persons)} ${t("evacPeople")}`))));
}

function outsideNote(summary, tianhe) {
  const out = summary.outside_road_data || {};
  if (!out.buildings) return null;
  const text = tf("evacOutsideNote", { b: fmt(out.buildings), p: fmt(out.people || 0), m: fmt(out.max_access_m ?? 400) });
  return h("div", { class: "evac-note", "data-stat": "outside", "data-value": String(out.people || 0) },
    h("strong", {}, `${t("evacOutside")}: ${fmt(out.people || 0)} ${t("evacPeople")}`),
    h("p", {}, text + (tianhe ? ` ${t("evacTianheRoads")}` : "")));
}

function bottleneckList(bottlenecks, onPick) {
  if (!bottlenecks || !bottlenecks.length) return h("p", { class: "muted small", i18n: "evacNoBottlenecks" });
  return h("ol", { class: "evac-bottlenecks" }, ...bottlenecks.map((b) => h("li", {
    "data-link": String(b.link), title: b.road_id || "", onclick: () => onPick(b),
  }, h("span", { class: "bn-name" }, b.name || t("evacUnnamed"), b.highway ? h("small", {}, ` ${b.highway}`) : null),
  h("span", { class: "bn-figures" }, `${t("evacQueue")} ${fmt(b.peak_queue)} · ${fmt(b.persons)} ${t("evacPeople")}`),
  h("span", { class: "bn-flow" }, `${t("evacFlow")} ${fmt(b.peak_flow_per_h)} / ${t("evacCapacity")} `
    + `${fmt(b.capacity_per_h)} ${t("evacPerHour")}`))));
}

/** Fill `box` with the summary; `trapped` is the trapped layer (GeoJSON), `onBottleneck(b)` a click on a road. */
export function renderSummary(box, summary, { trapped = null, tianhe = false, onBottleneck = () => {} } = {}) {
  if (!summary) { box.replaceChildren(); return; }
  const sh = summary.shelters || {};
  const shelterText = `${fmt(sh.used ?? 0)} / ${fmt(sh.count ?? 0)}`;
  const parts = [
    h("div", { class: "stats" },
      stat("population", summary.population, fmt(summary.population), t("unitPeople"), t("evacMustLeave")),
      stat("evacuated", summary.evacuated, fmt(summary.evacuated), t("unitPeople"), t("evacEvacuated"), "good"),
      stat("trapped", summary.trapped, fmt(summary.trapped), t("unitPeople"), t("evacTrapped"), summary.trapped > 0 ? "warn" : ""),
      stat("shelters", sh.used ?? 0, shelterText, "", `${t("evacShelters")} ${t("evacUsed")}`
        + ` · ${fmt(sh.full ?? 0)} ${t("evacFull")}${sh.exits ? ` · ${fmt(sh.exits)} ${t("evacExitsCount")}` : ""}`)),
    clearanceStats(summary.clearance_s),
    h("p", { class: "muted small evac-end" }, `${t("evacEnRoute")} ${fmt(summary.en_route_at_end ?? 0)} · `
      + `${t("evacNotDeparted")} ${fmt(summary.not_departed_at_end ?? 0)} (${t("evacAtEnd")})`),
    trappedReasons(trapped),
    outsideNote(summary, tianhe),
    h("h3", { i18n: "evacBottlenecks" }),
    bottleneckList(summary.bottlenecks, onBottleneck),
    summary.notes && summary.notes.length ? h("details", { class: "evac-notes" }, h("summary", { i18n: "evacNotes" }),
      h("ul", {}, ...summary.notes.map((n) => h("li", {}, n)))) : null];
  box.replaceChildren(...parts.filter(Boolean));
}
