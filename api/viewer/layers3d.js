// The twin's 3D Tiles layers (buildings, underground buildings, BIM) and the base map, as registry layers.
import { resource } from "./api.js";
import { floodBuildingStyle, heightLegend, heightStyle, ifcLegend, ifcStyle, undergroundStyle, useLegend,
  useStyle } from "./styles.js";
import { t } from "./i18n.js";

async function loadTileset(viewer, name, options = {}) {
  const tileset = await Cesium.Cesium3DTileset.fromUrl(resource(`/tiles/${name}/tileset.json`), {
    maximumScreenSpaceError: 8, ...options,
  });
  tileset.colorBlendMode = Cesium.Cesium3DTileColorBlendMode.REPLACE;
  viewer.scene.primitives.add(tileset);
  return tileset;
}

function tilesetLayer(viewer, base) {
  return {
    ...base,
    show() { if (this.tileset) this.tileset.show = true; viewer.scene.requestRender(); },
    hide() { if (this.tileset) this.tileset.show = false; viewer.scene.requestRender(); },
    select(id) { this.selectedId = id; this.restyle(); },
  };
}

/** Buildings coloured by height (default) or by use, switchable from the layer panel. */
export async function addBuildings(viewer, registry, entry) {
  const layer = tilesetLayer(viewer, {
    id: "buildings", title: { zh: entry.title_zh || t("layerBuildings"), en: entry.title || "Buildings" },
    order: 10, kind: "buildings", mode: "height", selectedId: null, flood: null,
  });
  layer.tileset = await loadTileset(viewer, "buildings");
  layer.restyle = function () {
    if (this.flood) this.tileset.style = floodBuildingStyle(this.flood, this.selectedId);
    else this.tileset.style = this.mode === "use" ? useStyle(this.selectedId) : heightStyle(this.selectedId);
    viewer.scene.requestRender();
  };
  /** Colour by flood depth (a Map of building id -> metres, from a scenario's results), or back (null). */
  layer.setFlood = function (depthById) {
    this.flood = depthById || null;
    this.restyle();
    registry.refresh();
  };
  layer.setMode = function (mode) {
    this.mode = mode === "use" ? "use" : "height";
    this.restyle();
    registry.refresh();
  };
  // while a flood scenario colours the buildings, its own layer row carries the legend
  layer.legend = () => (layer.flood ? null : layer.mode === "use" ? useLegend() : heightLegend());
  layer.controls = (container) => {
    const group = document.createElement("div");
    group.className = "segmented";
    for (const [mode, key] of [["height", "byHeight"], ["use", "byUse"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = t(key);
      button.dataset.mode = mode;
      button.className = layer.mode === mode ? "active" : "";
      button.addEventListener("click", () => layer.setMode(mode));
      group.appendChild(button);
    }
    container.appendChild(group);
  };
  layer.restyle();
  registry.register(layer);
  return layer;
}

export async function addUnderground(viewer, registry, entry) {
  const layer = tilesetLayer(viewer, {
    id: "buildings-underground", title: { zh: "地下建筑", en: "Underground buildings" }, order: 12,
    kind: "buildings", selectedId: null, visible: false,
    legend: () => ({ kind: "swatches", items: [{ color: "#9c8570", label: { zh: "地下建筑", en: "Underground" } }] }),
  });
  layer.tileset = await loadTileset(viewer, "buildings-underground");
  layer.restyle = function () { this.tileset.style = undergroundStyle(this.selectedId); viewer.scene.requestRender(); };
  layer.restyle();
  registry.register(layer);
  return layer;
}

export async function addBim(viewer, registry, entry) {
  const layer = tilesetLayer(viewer, {
    id: "bim", title: { zh: entry.title_zh || t("layerBim"), en: entry.title || "BIM models" }, order: 20,
    kind: "bim", selectedId: null, legend: ifcLegend,
  });
  layer.tileset = await loadTileset(viewer, "bim", { maximumScreenSpaceError: 4 });
  layer.restyle = function () { this.tileset.style = ifcStyle(this.selectedId); viewer.scene.requestRender(); };
  layer.restyle();
  registry.register(layer);
  return layer;
}

/** The base imagery (hillshade, roads, footprints) as a layer that can be switched off; `drawn` says what it shows. */
export function addBaseMap(viewer, registry, drawn = {}) {
  const imagery = () => viewer.imageryLayers.get(0);
  return registry.register({
    id: "basemap", title: { zh: "底图（地形晕渲）", en: "Base map (relief)" }, order: 90, kind: "imagery",
    show() { if (imagery()) imagery().show = true; viewer.scene.requestRender(); },
    hide() { if (imagery()) imagery().show = false; viewer.scene.requestRender(); },
    legend: () => ({
      kind: "swatches",
      items: [
        drawn.roads && { color: "#fce2a0", label: { zh: "主干道", en: "Main roads" } },
        drawn.roads && { color: "#ffffff", label: { zh: "道路", en: "Roads" }, border: true },
        drawn.buildings && { color: "#cdc6be", label: { zh: "建筑轮廓", en: "Building footprints" } },
        drawn.water && { color: "#9cc0e2", label: { zh: "水体", en: "Water" } },
        drawn.ground && { color: "linear-gradient(90deg,#dee2d6,#c4baa0)", label: { zh: "地形晕渲", en: "Hillshade" } },
      ].filter(Boolean),
    }),
  });
}
