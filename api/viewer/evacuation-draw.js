// Drawing a hazard zone on the map: click to add corners (on the ground, not on buildings), double-click or
// finish() to close, Esc or cancel() to drop it. The zone is drawn while it grows (a red outline following the
// mouse) and stays on the map once closed, as a GeoJSON Polygon in lon/lat (EPSG:4326).
const COLOUR = "#e53935";
const SAME_CLICK_PX = 6;     // the two clicks of a double-click land on (nearly) the same pixel

export class ZoneDrawer {
  constructor(viewer, { onChange = () => {} } = {}) {
    this.viewer = viewer;
    this.onChange = onChange;
    this.points = [];          // [{lon, lat, x, y}] (x, y: canvas pixels of the click)
    this.hover = null;         // {lon, lat} under the mouse while drawing
    this.active = false;
    this.closed = false;
    this.source = new Cesium.CustomDataSource("evac-draw");
    viewer.dataSources.add(this.source);
    this.handler = null;
    this.onKey = (e) => { if (e.key === "Escape" && this.active) this.cancel(); };
  }

  /** Start a new zone (drops the previous one). */
  start() {
    this.clear();
    this.active = true;
    this._entities();
    const canvas = this.viewer.scene.canvas;
    this.handler = new Cesium.ScreenSpaceEventHandler(canvas);
    this.handler.setInputAction((click) => this._add(click.position), Cesium.ScreenSpaceEventType.LEFT_CLICK);
    this.handler.setInputAction(() => this._doubleClick(), Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
    this.handler.setInputAction((move) => this._move(move.endPosition), Cesium.ScreenSpaceEventType.MOUSE_MOVE);
    // the viewer's own double-click zooms to an entity: not while a zone is drawn
    const widget = this.viewer.cesiumWidget.screenSpaceEventHandler;
    this.savedDoubleClick = widget.getInputAction(Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
    widget.removeInputAction(Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
    document.addEventListener("keydown", this.onKey);
    canvas.style.cursor = "crosshair";
    this._changed();
  }

  /** Close the zone; false (and still drawing) with fewer than 3 corners. */
  finish() {
    if (!this.active) return this.closed;
    if (this.points.length < 3) return false;
    this._stop();
    this.closed = true;
    this.hover = null;
    this._fill();
    this._changed();
    return true;
  }

  cancel() {
    this.clear();
  }

  clear() {
    this._stop();
    this.points = [];
    this.hover = null;
    this.closed = false;
    this.source.entities.removeAll();
    this._changed();
  }

  setVisible(on) {
    this.source.show = !!on;
    this.viewer.scene.requestRender();
  }

  /** The closed zone as a GeoJSON Polygon, or null. */
  get polygon() {
    if (!this.closed || this.points.length < 3) return null;
    const ring = this.points.map((p) => [Number(p.lon.toFixed(7)), Number(p.lat.toFixed(7))]);
    return { type: "Polygon", coordinates: [[...ring, ring[0]]] };
  }

  /** Area in m² of the zone (closed or being drawn), on a local plane. */
  area() {
    const pts = this.points;
    if (pts.length < 3) return 0;
    const lat0 = (pts.reduce((s, p) => s + p.lat, 0) / pts.length) * Math.PI / 180;
    const R = 6371008.8;
    const xy = pts.map((p) => [p.lon * Math.PI / 180 * R * Math.cos(lat0), p.lat * Math.PI / 180 * R]);
    let twice = 0;
    xy.forEach(([x1, y1], i) => { const [x2, y2] = xy[(i + 1) % xy.length]; twice += x1 * y2 - x2 * y1; });
    return Math.abs(twice) / 2;
  }

  // -- internals -------------------------------------------------------------------------------------
  _stop() {
    if (this.handler) {
      this.handler.destroy();
      this.handler = null;
      document.removeEventListener("keydown", this.onKey);
      if (this.savedDoubleClick) {
        this.viewer.cesiumWidget.screenSpaceEventHandler.setInputAction(this.savedDoubleClick,
          Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
      }
      this.viewer.scene.canvas.style.cursor = "";
    }
    this.active = false;
  }

  _ground(position) {
    const ray = this.viewer.camera.getPickRay(position);
    const cartesian = ray && this.viewer.scene.globe.pick(ray, this.viewer.scene);
    if (!cartesian) return null;
    const c = Cesium.Cartographic.fromCartesian(cartesian);
    return { lon: Cesium.Math.toDegrees(c.longitude), lat: Cesium.Math.toDegrees(c.latitude) };
  }

  _add(position) {
    const point = this._ground(position);
    if (!point) return;
    this.points.push({ ...point, x: position.x, y: position.y });
    this._changed();
  }

  _doubleClick() {
    // a double-click also sent two clicks: keep one corner of them
    const n = this.points.length;
    if (n >= 2) {
      const [a, b] = [this.points[n - 2], this.points[n - 1]];
      if (Math.hypot(a.x - b.x, a.y - b.y) <= SAME_CLICK_PX) this.points.pop();
    }
    this.finish();
  }

  _move(position) {
    if (!this.points.length) return;
    this.hover = this._ground(position);
    this.viewer.scene.requestRender();
  }

  /** Corners (and the mouse while drawing) just above the ground, for the outline. */
  _ring(withHover) {
    const globe = this.viewer.scene.globe;
    const pts = withHover && this.hover ? [...this.points, this.hover] : this.points;
    return pts.map((p) => Cesium.Cartesian3.fromDegrees(p.lon, p.lat,
      (globe.getHeight(Cesium.Cartographic.fromDegrees(p.lon, p.lat)) ?? 0) + 1.5));
  }

  // The outline is a plain polyline (cheap to redraw as the mouse moves, seen through buildings); the fill, a
  // polygon on the ground, is made once the zone is closed.
  _entities() {
    const colour = Cesium.Color.fromCssColorString(COLOUR);
    this.source.entities.add({
      id: "evac-draw-line",
      polyline: {
        positions: new Cesium.CallbackProperty(() => {
          const ring = this._ring(this.active);
          return ring.length >= 2 ? [...ring, ...(this.closed || (this.active && ring.length >= 3) ? [ring[0]] : [])] : [];
        }, false),
        width: 3, material: colour, depthFailMaterial: colour.withAlpha(0.6), arcType: Cesium.ArcType.NONE,
      },
    });
  }

  _fill() {
    const ring = this.points.map((p) => Cesium.Cartesian3.fromDegrees(p.lon, p.lat));
    this.source.entities.add({
      id: "evac-draw-fill",
      polygon: { hierarchy: new Cesium.PolygonHierarchy(ring),
        material: Cesium.Color.fromCssColorString(COLOUR).withAlpha(0.25), classificationType: Cesium.ClassificationType.BOTH },
    });
  }

  _changed() {
    // corners as points (added or removed with the list)
    for (const e of [...this.source.entities.values]) if (e.id.startsWith("evac-draw-pt-")) this.source.entities.remove(e);
    this.points.forEach((p, i) => this.source.entities.add({
      id: `evac-draw-pt-${i}`, position: Cesium.Cartesian3.fromDegrees(p.lon, p.lat),
      point: { pixelSize: 8, color: Cesium.Color.WHITE, outlineColor: Cesium.Color.fromCssColorString(COLOUR), outlineWidth: 2,
        heightReference: Cesium.HeightReference.CLAMP_TO_GROUND, disableDepthTestDistance: Infinity },
    }));
    this.viewer.scene.requestRender();
    this.onChange(this);
  }
}
