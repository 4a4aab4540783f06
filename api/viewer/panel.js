// The left panel: one row per registered layer (toggle, title, extra controls, legend).
import { label, t } from "./i18n.js";

function legendElement(legend) {
  const box = document.createElement("div");
  box.className = `legend legend-${legend.kind || "swatches"}`;
  for (const item of legend.items || []) {
    const row = document.createElement("div");
    row.className = "legend-item";
    const swatch = document.createElement("span");
    swatch.className = "swatch" + (item.border ? " bordered" : "");
    swatch.style.background = item.color;
    const text = document.createElement("span");
    text.textContent = label(item.label);
    row.append(swatch, text);
    box.appendChild(row);
  }
  return box;
}

export function renderLayerPanel(container, registry) {
  container.replaceChildren();
  for (const layer of registry.list()) {
    const row = document.createElement("section");
    row.className = "layer" + (layer.visible ? "" : " off");
    row.dataset.layer = layer.id;

    const head = document.createElement("label");
    head.className = "layer-head";
    const toggle = document.createElement("input");
    toggle.type = "checkbox";
    toggle.className = "switch";
    toggle.checked = layer.visible;
    toggle.dataset.layerToggle = layer.id;
    toggle.addEventListener("change", () => registry.setVisible(layer.id, toggle.checked));
    const title = document.createElement("span");
    title.className = "layer-title";
    title.textContent = label(layer.title);
    head.append(toggle, title);
    row.appendChild(head);

    if (layer.visible && typeof layer.controls === "function") {
      const controls = document.createElement("div");
      controls.className = "layer-controls";
      layer.controls(controls);
      row.appendChild(controls);
    }
    const legend = layer.visible && typeof layer.legend === "function" ? layer.legend() : null;
    if (legend) row.appendChild(legendElement(legend));
    container.appendChild(row);
  }
  if (!registry.list().length) {
    const empty = document.createElement("p");
    empty.className = "muted";
    empty.textContent = t("noTiles");
    container.appendChild(empty);
  }
}
