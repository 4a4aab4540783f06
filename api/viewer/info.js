// Picking: click a feature of a 3D Tiles layer, highlight it and list its attributes in the right panel.
import { fieldLabel, label, t, unitOf, valueLabel } from "./i18n.js";

const BUILDING_ORDER = ["name", "use", "height", "levels", "roof", "ground", "area", "height_rule", "use_raw",
  "population", "capacity", "underground", "source", "source_id", "id"];
const BIM_ORDER = ["global_id", "ifc_class", "name", "storey", "model", "z_min", "z_max", "source_id", "id"];

/** Properties of a picked 3D Tiles feature as a plain object (from the tile's structural metadata). */
export function featureProperties(feature) {
  const out = {};
  for (const id of feature.getPropertyIds()) {
    const value = feature.getProperty(id);
    if (value !== undefined && value !== null && value !== "") out[id] = value;
  }
  return out;
}

function formatValue(field, value) {
  if (typeof value === "boolean") return value ? t("yes") : t("no");
  if (typeof value === "number") {
    const digits = Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : 1;
    const text = value.toLocaleString(undefined, { maximumFractionDigits: digits });
    return unitOf(field) ? `${text} ${unitOf(field)}` : text;
  }
  return String(valueLabel(field, value));
}

export class InfoPanel {
  constructor(viewer, registry, element) {
    this.viewer = viewer;
    this.registry = registry;
    this.element = element;
    this.current = null;                         // {layer, properties}
    this.suspended = false;                      // true while another tool takes map clicks
    element.querySelector(".close").addEventListener("click", () => this.clear());
    const handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
    handler.setInputAction((click) => this.suspended || this.pickCanvas(click.position),
      Cesium.ScreenSpaceEventType.LEFT_CLICK);
  }

  /** The registry layer a picked feature belongs to, if it is one of ours. */
  layerOf(picked) {
    if (!(picked instanceof Cesium.Cesium3DTileFeature)) return null;
    return this.registry.list().find((l) => l.tileset && l.tileset === picked.tileset) || null;
  }

  /** Pick at canvas coordinates; returns {layer, properties} or null (and shows or clears the panel). */
  pickCanvas(position) {
    const picked = this.viewer.scene.pick(position);
    const layer = this.layerOf(picked);
    if (!layer) {
      this.clear();
      return null;
    }
    this.show(layer, featureProperties(picked));
    return { layer: layer.id, properties: this.current.properties };
  }

  show(layer, properties) {
    if (this.current && this.current.layer !== layer) this.current.layer.select(null);
    this.current = { layer, properties };
    layer.select(properties.id || null);
    this.render();
  }

  clear() {
    if (this.current) this.current.layer.select(null);
    this.current = null;
    this.render();
  }

  render() {
    const body = this.element.querySelector(".info-body");
    const title = this.element.querySelector(".info-title");
    const subtitle = this.element.querySelector(".info-subtitle");
    this.element.classList.toggle("empty", !this.current);
    if (!this.current) {
      title.textContent = t("info");
      subtitle.textContent = "";
      body.replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: t("clickHint") }));
      return;
    }
    const { layer, properties } = this.current;
    const isBim = layer.kind === "bim";
    title.textContent = properties.name || properties.id || "—";
    subtitle.textContent = label(layer.title);
    const order = isBim ? BIM_ORDER : BUILDING_ORDER;
    const fields = [...order.filter((f) => f in properties), ...Object.keys(properties).filter((f) => !order.includes(f))];
    const heading = document.createElement("h3");
    heading.textContent = isBim ? t("ifcData") : t("attributes");
    const table = document.createElement("table");
    table.className = "props";
    for (const field of fields) {
      const tr = document.createElement("tr");
      tr.dataset.field = field;
      const th = document.createElement("th");
      th.textContent = fieldLabel(field);
      const td = document.createElement("td");
      td.textContent = formatValue(field, properties[field]);
      if (field === "id" || field === "global_id" || field === "source_id") td.className = "mono";
      tr.append(th, td);
      table.appendChild(tr);
    }
    body.replaceChildren(heading, table);
  }
}
