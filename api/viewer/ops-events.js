// The alert event list: kind, sensor, value against threshold, opened time and state, with Acknowledge and
// Close buttons (POST /live/events/{id}/acknowledge | close, scope alerts:write). A row click focuses the site.
import { apiKey, postJSON } from "./api.js";
import { getLang, t } from "./i18n.js";
import { isActive, isForecast, levelOfEvent } from "./ops-model.js";
import { EVENT_STATE_KEYS } from "./ops-strings.js";

const MAX_CLOSED = 20;

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function formatValue(value, digits = 2) {
  if (typeof value === "boolean") return value ? t("opsRunning") : t("opsStopped");
  if (typeof value !== "number" || !Number.isFinite(value)) return value === null || value === undefined ? "—" : String(value);
  const abs = Math.abs(value);
  const d = abs >= 100 ? 0 : abs >= 10 ? 1 : digits;
  return value.toLocaleString(getLang() === "zh" ? "zh-CN" : "en", { maximumFractionDigits: d });
}

/** Local date-time of an ISO text or epoch ms: "14:05" today, "06-01 14:05" otherwise. */
export function formatTime(when) {
  const d = new Date(typeof when === "number" ? when : Date.parse(when));
  if (Number.isNaN(d.getTime())) return "—";
  const pad = (n) => String(n).padStart(2, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return d.toDateString() === new Date().toDateString() ? time : `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

export function kindClass(event) {
  if (isForecast(event)) return "forecast";
  return event.kind === "warning" || event.kind === "alarm" ? event.kind : "other";
}

/** Unknown kinds show as they come, so a new kind of event is never hidden. */
export function eventKindLabel(event) {
  if (isForecast(event)) return t("opsForecast");
  return event.kind === "warning" ? t("opsWarning") : event.kind === "alarm" ? t("opsAlarm") : String(event.kind || "?");
}

export class EventList {
  /** network: SensorNetwork; siteName(site) -> text; onFocus(event); onMessage(text, kind); onChange() after an action. */
  constructor(element, network, { siteName, onFocus, onMessage, onChange }) {
    this.element = element;
    this.network = network;
    this.siteName = siteName;
    this.onFocus = onFocus;
    this.onMessage = onMessage;
    this.onChange = onChange;
    this.shown = [];
    this.busy = new Set();
  }

  /** The events as listed: all active ones, then the most recent closed ones. */
  visible() {
    const all = this.network.eventList();
    const active = all.filter(isActive);
    return [...active, ...all.filter((e) => !isActive(e)).slice(0, MAX_CLOSED)];
  }

  render() {
    this.shown = this.visible();
    if (!this.shown.length) {
      this.element.replaceChildren(h("li", { class: "muted small empty" }, t("opsNoEvents")));
      return;
    }
    this.element.replaceChildren(...this.shown.map((e) => this.row(e)));
  }

  row(e) {
    const stream = this.network.stream(e.datastream_id);
    const site = this.network.siteOfStream(e.datastream_id) || this.network.site(e.thing_id);
    const unit = stream && stream.unit ? ` ${stream.unit}` : "";
    const below = stream && stream.thresholds && stream.thresholds.direction === "below";
    const who = site ? this.siteName(site) : stream ? stream.name : e.message || `#${e.id}`;
    const forecast = isForecast(e);
    const level = levelOfEvent(e);
    const details = e.forecast && typeof e.forecast === "object" ? e.forecast : {};
    let compare = typeof e.value === "number" && typeof e.threshold === "number"
      ? `${formatValue(e.value)}${unit} ${below ? "≤" : "≥"} ${formatValue(e.threshold)}${unit}` : e.message || "";
    if (forecast) {
      compare = `${t("opsExpected")} ${compare}${level ? ` (${t(level === "alarm" ? "opsAlarm" : "opsWarning")})` : ""}`;
      if (details.expected_at) compare += ` · ${t("opsExpectedAt")} ${formatTime(details.expected_at)}`;
    }
    const peak = !forecast && typeof e.peak === "number" && e.peak !== e.value ? ` · ${t("opsPeak")} ${formatValue(e.peak)}${unit}` : "";
    const kind = kindClass(e);
    const active = isActive(e);
    const busy = this.busy.has(e.id);
    const handled = e.state === "acknowledged" && e.acknowledged_by ? ` · ${t("opsBy")} ${e.acknowledged_by}`
      : e.state === "closed" && e.closed_by ? ` · ${t("opsBy")} ${e.closed_by}` : "";
    return h("li", { class: `ops-event ${kind} ${e.state}`, "data-event": e.id, "data-kind": e.kind, "data-state": e.state,
      "data-datastream": e.datastream_id ?? null, title: e.message || null, onclick: () => this.onFocus(e) },
    h("div", { class: "ev-top" },
      h("span", { class: `ev-kind ${kind}` }, eventKindLabel(e)),
      h("span", { class: "ev-sensor" }, who),
      h("span", { class: `ev-state ${e.state}` }, t(EVENT_STATE_KEYS[e.state] || e.state))),
    h("div", { class: "ev-detail" }, `${compare}${peak}`),
    h("div", { class: "ev-foot" },
      h("span", { class: "ev-time" }, `${t("opsOpened")} ${formatTime(e.opened_at)}${handled}`),
      active ? h("span", { class: "ev-actions" },
        e.state === "open" ? h("button", { type: "button", class: "ev-button", "data-action": "acknowledge", disabled: busy,
          onclick: (ev) => { ev.stopPropagation(); this.act(e, "acknowledge"); } }, t("opsAck")) : null,
        h("button", { type: "button", class: "ev-button secondary", "data-action": "close", disabled: busy,
          onclick: (ev) => { ev.stopPropagation(); this.act(e, "close"); } }, t("opsClose"))) : null));
  }

  /** Acknowledge or close an event through the API with the session's key. */
  async act(event, action) {
    if (!apiKey()) { this.onMessage(t("opsNeedKey"), "error"); return null; }
    this.busy.add(event.id);
    this.render();
    try {
      const r = await postJSON(`/live/events/${event.id}/${action}`, {});
      if (r.status === 401) throw new Error(t("opsBadKey"));
      if (r.status === 403) throw new Error(t("opsNoAlertScope"));
      if (r.status >= 400 || !r.body) {
        throw new Error(`${t("opsActionFailed")}: ${(r.body && (r.body.description || r.body.detail)) || r.status}`);
      }
      this.network.applyEvent(r.body);      // the WebSocket brings it too; this shows it without waiting
      this.onMessage("");
      return r.body;
    } catch (error) {
      this.onMessage(error.message || String(error), "error");
      return null;
    } finally {
      this.busy.delete(event.id);
      this.onChange();
    }
  }
}
