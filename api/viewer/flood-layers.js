// A flood scenario's results on the map, as registry layers: animated depth frames and the maximum depth
// (PNG drapes from /ogc/jobs/{id}/imagery), flooded buildings (the 3D buildings recoloured by depth) and
// impassable roads (GeoJSON clamped to the ground).
import { getJSON, resource } from "./api.js";
import { depthLegend, floodBuildingLegend, roadColour, roadLegend } from "./styles.js";

const DEPTH_ALPHA = 0.9;

function drape(viewer, url, rectangle, show) {
  const rect = Cesium.Rectangle.fromDegrees(rectangle.west, rectangle.south, rectangle.east, rectangle.north);
  const layer = Cesium.ImageryLayer.fromProviderAsync(
    Cesium.SingleTileImageryProvider.fromUrl(resource(url), { rectangle: rect }), { alpha: DEPTH_ALPHA });
  layer.show = show;
  layer.url = url;
  viewer.imageryLayers.add(layer);
  return layer;
}

export class FloodOverlay {
  constructor(viewer, registry) {
    this.viewer = viewer;
    this.registry = registry;
    this.jobId = null;
    this.index = null;         // the imagery index: rectangle, legend, max_depth, frames
    this.frameIndex = 0;
    this.frameLayers = [];     // one ImageryLayer per frame, made when first shown
    this.maxLayer = null;
    this.roads = null;         // GeoJsonDataSource
    this.depthById = new Map();
    this.layerIds = [];
  }

  get frames() {
    return this.index ? this.index.frames : [];
  }

  /** Load a successful job's results; `buildings` is its buildings GeoJSON (already fetched for the summary). */
  async load(jobId, buildings, threshold) {
    this.clear();
    this.jobId = jobId;
    const base = `/ogc/jobs/${jobId}`;
    this.index = await getJSON(`${base}/imagery`);
    this.depthById = new Map(buildings.features
      .filter((f) => f.properties.depth_m >= threshold)
      .map((f) => [f.properties.id, f.properties.depth_m]));
    this.roads = await Cesium.GeoJsonDataSource.load(resource(`${base}/results/roads`), { clampToGround: true });
    for (const entity of this.roads.entities.values) {
      const minutes = (entity.properties.impassable_at_s?.getValue() ?? 0) / 60;
      if (entity.polyline) {
        entity.polyline.width = 4.5;
        entity.polyline.material = Cesium.Color.fromCssColorString(roadColour(minutes));
        entity.polyline.classificationType = Cesium.ClassificationType.TERRAIN;
      }
    }
    this.roads.show = false;
    await this.viewer.dataSources.add(this.roads);
    this._register();
    this.setFrame(this.frames.length - 1);
  }

  _register() {
    const viewer = this.viewer;
    const legend = () => depthLegend(this.index.legend);
    const self = this;
    const add = (layer) => { this.layerIds.push(layer.id); this.registry.register(layer); };
    add({
      id: "flood-depth", title: { zh: "内涝水深（动画）", en: "Flood depth (animated)" }, order: 1, kind: "flood",
      visible: true, legend,
      show() { self.depthVisible = true; self.setFrame(self.frameIndex); },
      hide() { self.depthVisible = false; self.frameLayers.forEach((l) => l && (l.show = false)); viewer.scene.requestRender(); },
    });
    add({
      id: "flood-max", title: { zh: "最大水深", en: "Maximum depth" }, order: 2, kind: "flood", visible: false,
      legend: () => (this.registry.get("flood-depth")?.visible ? null : legend()),
      show() {
        self.maxLayer ??= drape(viewer, self.index.max_depth.png, self.index.rectangle, true);
        self.maxLayer.show = true;
        viewer.scene.requestRender();
        self.registry.refresh();
      },
      hide() { if (self.maxLayer) self.maxLayer.show = false; viewer.scene.requestRender(); },
    });
    const buildings = this.registry.get("buildings");
    if (buildings && buildings.setFlood) {
      add({
        id: "flood-buildings", title: { zh: "受淹建筑", en: "Flooded buildings" }, order: 3, kind: "flood",
        visible: true, legend: floodBuildingLegend,
        show() { buildings.setFlood(self.depthById); },
        hide() { buildings.setFlood(null); },
      });
    }
    add({
      id: "flood-roads", title: { zh: "不可通行道路", en: "Impassable roads" }, order: 4, kind: "flood", visible: true,
      legend: roadLegend,
      show() { if (self.roads) self.roads.show = true; viewer.scene.requestRender(); },
      hide() { if (self.roads) self.roads.show = false; viewer.scene.requestRender(); },
    });
  }

  /** Show frame `i` (and only it) of the depth animation. */
  setFrame(i) {
    if (!this.frames.length) return;
    this.frameIndex = Math.max(0, Math.min(this.frames.length - 1, i));
    const depth = this.registry.get("flood-depth");
    const visible = depth ? depth.visible : true;
    if (visible && !this.frameLayers[this.frameIndex]) {
      const frame = this.frames[this.frameIndex];
      this.frameLayers[this.frameIndex] = drape(this.viewer, frame.png, this.index.rectangle, false);
    }
    this.frameLayers.forEach((layer, k) => { if (layer) layer.show = visible && k === this.frameIndex; });
    this.viewer.scene.requestRender();
  }

  /** The imagery layer of the frame shown, for tests: {index, url, show, ready}. */
  shownFrame() {
    const layer = this.frameLayers[this.frameIndex];
    return layer ? { index: this.frameIndex, url: layer.url, show: layer.show, ready: layer.ready,
      inViewer: this.viewer.imageryLayers.contains(layer) } : null;
  }

  /** Resolves once the frame shown has its image (the provider made). */
  whenFrameReady(timeoutMs = 20000) {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        const layer = this.frameLayers[this.frameIndex];
        if (layer && layer.ready) { clearInterval(timer); this.viewer.scene.requestRender(); resolve(true); }
        else if (performance.now() - started > timeoutMs) { clearInterval(timer); reject(new Error("frame image not loaded")); }
      }, 50);
    });
  }

  clear() {
    for (const id of this.layerIds) this.registry.unregister(id);
    this.layerIds = [];
    for (const layer of [...this.frameLayers, this.maxLayer]) if (layer) this.viewer.imageryLayers.remove(layer, true);
    this.frameLayers = [];
    this.maxLayer = null;
    if (this.roads) this.viewer.dataSources.remove(this.roads, true);
    this.roads = null;
    this.index = null;
    this.jobId = null;
    this.viewer.scene.requestRender();
  }
}

