// The Cesium viewer: our own imagery and terrain only (no ion, no network beyond this server).
import { resource } from "./api.js";

export function createViewer(container, imagery) {
  Cesium.Ion.defaultAccessToken = "";
  const rectangle = Cesium.Rectangle.fromDegrees(imagery.rectangle.west, imagery.rectangle.south,
    imagery.rectangle.east, imagery.rectangle.north);
  const baseLayer = Cesium.ImageryLayer.fromProviderAsync(
    Cesium.SingleTileImageryProvider.fromUrl(resource(imagery.url), { rectangle }));
  const viewer = new Cesium.Viewer(container, {
    baseLayer,
    baseLayerPicker: false, geocoder: false, homeButton: false, sceneModePicker: false,
    navigationHelpButton: false, animation: false, timeline: false, fullscreenButton: false,
    infoBox: false, selectionIndicator: false, projectionPicker: false, vrButton: false,
    terrainProvider: new Cesium.EllipsoidTerrainProvider(),
    requestRenderMode: true, maximumRenderTimeChange: Infinity,
    shadows: false,
    contextOptions: { webgl: { preserveDrawingBuffer: true } },
  });
  const scene = viewer.scene;
  scene.globe.baseColor = Cesium.Color.fromCssColorString("#e9ece5");
  scene.globe.depthTestAgainstTerrain = true;
  scene.globe.enableLighting = true;
  scene.globe.showGroundAtmosphere = false;
  scene.fog.enabled = false;
  scene.skyAtmosphere.show = true;
  scene.skyBox.show = false;              // a starfield costs a lot on software GL and says nothing about a city
  scene.globe.maximumScreenSpaceError = 3;
  scene.backgroundColor = Cesium.Color.fromCssColorString("#0f2233");
  scene.screenSpaceCameraController.minimumZoomDistance = 5;
  scene.screenSpaceCameraController.maximumZoomDistance = 60000;
  viewer.shadowMap.maximumDistance = 4000;
  viewer.shadowMap.softShadows = false;
  viewer.clock.shouldAnimate = false;
  viewer.scene.highDynamicRange = false;
  return viewer;
}

/** Our quantized-mesh terrain when the twin has a ground raster; the ellipsoid otherwise. */
export async function setupTerrain(viewer, wanted) {
  if (!wanted) return false;
  try {
    viewer.terrainProvider = await Cesium.CesiumTerrainProvider.fromUrl(resource("/tiles/terrain-qm/"),
      { requestVertexNormals: true });
    return true;
  } catch (error) {
    console.warn("terrain unavailable, using the ellipsoid:", error);
    viewer.terrainProvider = new Cesium.EllipsoidTerrainProvider();
    return false;
  }
}

/** Whole hours east of UTC at this longitude (UTC+8 for Guangzhou): the clock the slider shows. */
export const utcOffsetHours = (lon) => Math.round(lon / 15);

/** Sun position for `hour` (0–24, local time) today. */
export function setTimeOfDay(viewer, hour, utcOffset) {
  const now = new Date();
  const utc = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) + (hour - utcOffset) * 3600e3;
  viewer.clock.currentTime = Cesium.JulianDate.fromDate(new Date(utc));
  viewer.scene.requestRender();
}

export function setShadows(viewer, on) {
  viewer.shadows = !!on;
  viewer.scene.requestRender();
}

/** An oblique view of a lon/lat extent from the south (pitch about −35°). */
export function viewExtent(viewer, extent, { duration = 1.5, pitchDeg = -35 } = {}) {
  const [w, s, e, n] = extent;
  const sphere = Cesium.BoundingSphere.fromRectangle3D(Cesium.Rectangle.fromDegrees(w, s, e, n));
  const offset = new Cesium.HeadingPitchRange(Cesium.Math.toRadians(10), Cesium.Math.toRadians(pitchDeg),
    sphere.radius * 1.55);
  return flyToSphere(viewer, sphere, offset, duration);
}

/** Fly to a point of interest (search result), looking at it obliquely from `range` metres. */
export function viewPoint(viewer, lon, lat, height, { range = 250, pitchDeg = -40, duration = 1.2 } = {}) {
  const centre = Cesium.Cartesian3.fromDegrees(lon, lat, height);
  const sphere = new Cesium.BoundingSphere(centre, 1);
  const offset = new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(pitchDeg), range);
  return flyToSphere(viewer, sphere, offset, duration);
}

function flyToSphere(viewer, sphere, offset, duration) {
  return new Promise((resolve) => {
    if (duration === 0) {
      viewer.camera.viewBoundingSphere(sphere, offset);
      viewer.camera.lookAtTransform(Cesium.Matrix4.IDENTITY);
      viewer.scene.requestRender();
      resolve(true);
      return;
    }
    viewer.camera.flyToBoundingSphere(sphere, {
      offset, duration, complete: () => resolve(true), cancel: () => resolve(false),
    });
  });
}

/** Resolves once every given tileset and the globe have loaded what the current view needs. */
export function whenTilesLoaded(viewer, tilesets, timeoutMs = 60000) {
  const scene = viewer.scene;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let calm = 0;
    const timer = setInterval(() => {
      scene.requestRender();
      const done = scene.globe.tilesLoaded && tilesets.every((ts) => !ts.show || ts.tilesLoaded);
      calm = done ? calm + 1 : 0;
      if (calm >= 3) {
        clearInterval(timer);
        resolve(true);
      } else if (performance.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error("timed out waiting for tiles"));
      }
    }, 100);
  });
}
