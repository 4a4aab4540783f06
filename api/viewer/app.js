// The viewer's entry point: read the twin's config and catalogue, build the scene, wire the panels.
//
// For tests and embedding, window.twin exposes:
//   viewer, layers (the LayerRegistry), ready (resolves once the buildings have loaded their visible tiles),
//   pickAt(x, y), screenPositionOf(lon, lat, height) (page CSS pixels), flyTo(lon, lat, height, opts),
//   waitForTiles(), selection(), setLanguage("zh" | "en"), home(), flood (the flood scenario panel: state,
//   job, overlay.shownFrame(), hydrograph), evacuation (the evacuation panel), ops (the live operations
//   view: sensors, events), tabs (tabs.show("flood" | "evacuation" | "ops")).
import { apiKey, getJSON, setApiKey } from "./api.js";
import { applyStatic, getLang, label, onLangChange, setLang, t } from "./i18n.js";
import { EvacuationPanel } from "./evacuation.js";
import { FloodPanel } from "./flood.js";
import { InfoPanel } from "./info.js";
import { addBaseMap, addBim, addBuildings, addUnderground } from "./layers3d.js";
import { renderLayerPanel } from "./panel.js";
import { LayerRegistry } from "./registry.js";
import { createViewer, setShadows, setTimeOfDay, setupTerrain, utcOffsetHours, viewExtent, viewPoint,
  whenTilesLoaded } from "./scene.js";
import { SearchBox } from "./search.js";
import { OpsPanel } from "./ops.js";
import { ScenarioTabs } from "./tabs.js";

const $ = (selector) => document.querySelector(selector);
const registry = new LayerRegistry();
let resolveReady, rejectReady;
const twin = (window.twin = {
  layers: registry,
  ready: new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; }),
});
twin.ready.catch(() => {});   // failures are shown in the page; tests read the rejection

function notice(message) {
  const box = $("#notice");
  box.textContent = message;
  box.hidden = !message;
}

function shortAttribution(text) {
  if (/openstreetmap/i.test(text)) return { zh: "© OpenStreetMap 贡献者", en: "© OpenStreetMap contributors" };
  if (/copernicus/i.test(text)) return { zh: "Copernicus DEM © DLR, Airbus DS / 欧盟 ESA", en: "Copernicus DEM © DLR, Airbus DS / EU, ESA" };
  return { zh: text, en: text };
}

function renderAttribution(texts) {
  const box = $("#attribution");
  const unique = [...new Set(texts)];
  const short = unique.map(shortAttribution);
  const seen = new Set();
  const parts = short.map(label).filter((s) => !seen.has(s) && seen.add(s));
  box.textContent = parts.join(" · ");
  box.title = unique.join("\n");
}

function renderHeader(config) {
  const zh = config.city_zh || config.city;
  $("#city-name").textContent = getLang() === "zh" ? zh : config.city;
  document.title = `${getLang() === "zh" ? zh : config.city} · ${t("appTitle")}`;
  $("#lang-button").textContent = t("lang");
  $("#key-button").textContent = apiKey() ? t("signOut") : t("signIn");
}

function setupDisplayControls(viewer, config) {
  const [w, , e] = config.extent_wgs84;
  const offset = utcOffsetHours((w + e) / 2);
  const slider = $("#time-slider");
  const output = $("#time-value");
  const update = () => {
    const hour = Number(slider.value);
    const hh = String(Math.floor(hour)).padStart(2, "0");
    const mm = String(Math.round((hour % 1) * 60)).padStart(2, "0");
    output.textContent = `${hh}:${mm} (UTC${offset >= 0 ? "+" : ""}${offset})`;
    setTimeOfDay(viewer, hour, offset);
  };
  slider.addEventListener("input", update);
  update();
  const shadows = $("#shadows-toggle");
  shadows.addEventListener("change", () => setShadows(viewer, shadows.checked));
}

async function addTwinLayers(viewer, catalogue) {
  const byName = Object.fromEntries(catalogue.layers.map((l) => [l.name, l]));
  // the imagery draws public layers only (tiles/imagery.py)
  const publicLayer = (name) => byName[name] && byName[name].classification === "public";
  const ground = catalogue.rasters.find((r) => r.name === "ground");
  addBaseMap(viewer, registry, {
    roads: publicLayer("roads"), buildings: publicLayer("buildings"), water: publicLayer("water"),
    ground: !!ground && ground.classification === "public",
  });
  const jobs = [];
  if (byName.buildings) {
    jobs.push(addBuildings(viewer, registry, byName.buildings).catch((error) => {
      console.warn("buildings tileset unavailable:", error);
      notice(t("noTiles"));
    }));
    if ((byName.buildings.stats || {}).underground > 0) {
      jobs.push(addUnderground(viewer, registry, byName.buildings).catch((e) => console.warn("underground:", e)));
    }
  }
  if (byName.bim) jobs.push(addBim(viewer, registry, byName.bim).catch((e) => console.warn("bim tileset:", e)));
  await Promise.all(jobs);
}

async function main() {
  applyStatic(document);
  const [config, catalogue, imagery] = await Promise.all([
    getJSON("/viewer-config.json"), getJSON("/api/catalogue"), getJSON("/imagery/base.json")]);
  renderHeader(config);

  const viewer = createViewer("map", imagery);
  twin.viewer = viewer;
  const hasGround = catalogue.rasters.some((r) => r.name === "ground");
  const terrain = setupTerrain(viewer, hasGround).then((ok) => { if (hasGround && !ok) notice(t("terrainFallback")); });
  setupDisplayControls(viewer, config);

  const layerList = $("#layer-list");
  registry.onChange(() => renderLayerPanel(layerList, registry));
  await addTwinLayers(viewer, catalogue);
  await terrain;

  const attributions = [...imagery.attributions];
  for (const l of catalogue.layers) if (registry.get(l.name)) attributions.push(...l.attributions);
  for (const r of catalogue.rasters) if (r.name === "ground") attributions.push(...r.attributions);
  renderAttribution(attributions);

  const info = new InfoPanel(viewer, registry, $("#info-panel"));
  info.render();
  const flood = new FloodPanel(viewer, registry, $("#flood-panel"), { info });
  const evacuation = new EvacuationPanel(viewer, registry, $("#evac-panel"), { info, flood });
  const ops = new OpsPanel(viewer, registry, $("#ops-panel"), { info });
  const tabs = new ScenarioTabs($("#scenario-tabs"), { flood: $("#flood-panel"), evacuation: $("#evac-panel"),
    ops: $("#ops-panel") });
  const fly = (lon, lat, height, opts) => viewPoint(viewer, lon, lat, height, opts);
  new SearchBox($("#search"), (hit) => {
    const range = hit.layer === "bim" ? 60 : Math.max(380, (hit.height || 0) * 3);
    fly(hit.lon, hit.lat, hit.top ?? 0, { range });
  });

  const home = (duration = 1.5) => viewExtent(viewer, config.extent_wgs84, { duration });
  $("#home-button").addEventListener("click", () => home());
  $("#lang-button").addEventListener("click", () => setLang(getLang() === "zh" ? "en" : "zh"));
  $("#key-button").addEventListener("click", () => {
    if (apiKey()) setApiKey("");
    else {
      const key = window.prompt(t("keyPrompt"));
      if (!key) return;
      setApiKey(key.trim());
    }
    location.reload();
  });
  onLangChange(() => {
    renderHeader(config);
    renderLayerPanel(layerList, registry);
    renderAttribution(attributions);
    info.render();
    $("#time-slider").dispatchEvent(new Event("input"));
  });

  const canvas = viewer.scene.canvas;
  const toCanvas = (x, y) => {
    const r = canvas.getBoundingClientRect();
    return new Cesium.Cartesian2(x - r.left, y - r.top);
  };
  const tilesets = () => registry.list().filter((l) => l.tileset).map((l) => l.tileset);
  Object.assign(twin, {
    viewer, info, home, flood, evacuation, ops, tabs,
    pickAt: (x, y) => info.pickCanvas(toCanvas(x, y)),
    selection: () => (info.current ? { layer: info.current.layer.id, properties: info.current.properties } : null),
    screenPositionOf(lon, lat, height = 0) {
      const p = Cesium.SceneTransforms.worldToWindowCoordinates(viewer.scene, Cesium.Cartesian3.fromDegrees(lon, lat, height));
      if (!p) return null;
      const r = canvas.getBoundingClientRect();
      return { x: p.x + r.left, y: p.y + r.top };
    },
    flyTo: async (lon, lat, height, opts = {}) => { await fly(lon, lat, height, opts); return whenTilesLoaded(viewer, tilesets()); },
    waitForTiles: (timeoutMs) => whenTilesLoaded(viewer, tilesets(), timeoutMs),
    setLanguage: setLang,
  });

  await home(0);
  await whenTilesLoaded(viewer, tilesets(), 90000);
  document.body.classList.add("ready");
  return true;
}

main().then(resolveReady, (error) => {
  console.warn("viewer failed to start:", error);
  notice(`${t("loading")} ✗ ${error.message || error}`);
  rejectReady(error);
});
