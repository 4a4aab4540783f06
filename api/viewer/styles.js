// Colour schemes for the 3D Tiles layers (Cesium3DTileStyle) and the legends that go with them.
import { pairOf } from "./i18n.js";

export const HIGHLIGHT = "#00e5ff";
const UNKNOWN = "#b4b4b4";

// Height classes (metres, ground to roof): sequential blues, tallest darkest.
export const HEIGHT_CLASSES = [
  [0, 12, "#d4e4f4"], [12, 24, "#a9cbe8"], [24, 50, "#7aaedb"], [50, 100, "#4f8fcb"],
  [100, 200, "#2f6db4"], [200, 300, "#244f93"], [300, Infinity, "#1b326b"],
];

export const USE_COLOURS = {
  residential: "#f0a660", commercial: "#e35d5d", office: "#5a86d8", industrial: "#8f6bb8",
  school: "#efd05a", health: "#e07aa8", public: "#4fb286", transport: "#6f8596",
  structure: "#c5c0b8", religious: "#a77b58", other: "#e4ded3",
};

export const IFC_COLOURS = {
  IfcWallStandardCase: "#ece6da", IfcWall: "#ece6da", IfcSlab: "#b75b43", IfcRoof: "#b75b43",
  IfcWindow: "#7cc3e8", IfcDoor: "#8a5a3b", IfcBeam: "#a48b6a", IfcMember: "#c09a6b", IfcColumn: "#a9a9a9",
  IfcStair: "#d9a25f", IfcRailing: "#6b6b6b", IfcSpace: "#9fd39b", IfcSite: "#8fb069",
};

const quote = (s) => `'${String(s).replace(/['\\]/g, "")}'`;
const colour = (css, alpha = 1) => `color('${css}', ${alpha})`;
const pick = (id) => (id ? [[`\${id} === ${quote(id)}`, colour(HIGHLIGHT)]] : []);

export function heightStyle(selectedId) {
  const conditions = [...pick(selectedId), ["${height} === undefined", colour(UNKNOWN)]];
  for (const [lo, , css] of [...HEIGHT_CLASSES].reverse()) conditions.push([`\${height} >= ${lo}`, colour(css)]);
  conditions.push(["true", colour(UNKNOWN)]);
  return new Cesium.Cesium3DTileStyle({ color: { conditions } });
}

export function useStyle(selectedId) {
  const conditions = [...pick(selectedId)];
  for (const [use, css] of Object.entries(USE_COLOURS)) conditions.push([`\${use} === ${quote(use)}`, colour(css)]);
  conditions.push(["true", colour(UNKNOWN)]);
  return new Cesium.Cesium3DTileStyle({ color: { conditions } });
}

export function undergroundStyle(selectedId) {
  return new Cesium.Cesium3DTileStyle({ color: { conditions: [...pick(selectedId), ["true", colour("#9c8570", 0.85)]] } });
}

export function ifcStyle(selectedId) {
  const conditions = [...pick(selectedId)];
  for (const [cls, css] of Object.entries(IFC_COLOURS)) {
    const alpha = cls === "IfcSpace" || cls === "IfcSite" ? 0.35 : cls === "IfcWindow" ? 0.7 : 1;
    conditions.push([`\${ifc_class} === ${quote(cls)}`, colour(css, alpha)]);
  }
  conditions.push(["true", colour("#c7ccd4")]);
  return new Cesium.Cesium3DTileStyle({ color: { conditions } });
}

const fmt = (v) => (v === Infinity ? "" : String(v));

export function heightLegend() {
  return {
    kind: "ramp",
    items: HEIGHT_CLASSES.map(([lo, hi, css]) => ({
      color: css,
      label: hi === Infinity ? { zh: `≥ ${lo} 米`, en: `≥ ${lo} m` } : { zh: `${lo}–${fmt(hi)} 米`, en: `${lo}–${fmt(hi)} m` },
    })),
  };
}

export function useLegend(present) {
  const uses = Object.keys(USE_COLOURS).filter((u) => !present || present.has(u));
  return { kind: "swatches", items: uses.map((u) => ({ color: USE_COLOURS[u], label: pairOf("use", u) })) };
}

export function ifcLegend() {
  const seen = new Set();
  const items = [];
  for (const [cls, css] of Object.entries(IFC_COLOURS)) {
    const name = pairOf("ifc_class", cls);
    if (seen.has(name.zh)) continue;
    seen.add(name.zh);
    items.push({ color: css, label: name });
  }
  return { kind: "swatches", items };
}

// Flood scenarios: buildings reached by water (depth against their walls), warm so they stand out of the blue water.
export const FLOOD_BUILDING_CLASSES = [
  [0.15, 0.3, "#fdd27a"], [0.3, 0.5, "#fb9a3c"], [0.5, 1.0, "#e8542a"], [1.0, Infinity, "#b3122b"],
];
const DRY_BUILDING = "#e6e9ed";

/**
 * Buildings coloured by flood depth (`depthById`: building id -> metres), the others pale, the selected one
 * highlighted. A custom colour expression (a Map lookup per feature) instead of one condition per building.
 */
export function floodBuildingStyle(depthById, selectedId) {
  const classes = FLOOD_BUILDING_CLASSES.map(([lo, hi, css]) => [lo, hi, Cesium.Color.fromCssColorString(css)]);
  const dry = Cesium.Color.fromCssColorString(DRY_BUILDING);
  const picked = Cesium.Color.fromCssColorString(HIGHLIGHT);
  const colourOf = (feature, result) => {
    const id = feature.getProperty("id");
    if (selectedId && id === selectedId) return Cesium.Color.clone(picked, result);
    const depth = depthById.get(id);
    if (depth === undefined || depth < classes[0][0]) return Cesium.Color.clone(dry, result);
    const hit = classes.find(([lo, hi]) => depth >= lo && depth < hi) || classes[classes.length - 1];
    return Cesium.Color.clone(hit[2], result);
  };
  const style = new Cesium.Cesium3DTileStyle();
  style.color = { evaluate: colourOf, evaluateColor: colourOf };
  return style;
}

export function floodBuildingLegend() {
  return {
    kind: "ramp",
    items: [
      { color: DRY_BUILDING, label: { zh: "未受淹", en: "Not flooded" } },
      ...FLOOD_BUILDING_CLASSES.map(([lo, hi, css]) => ({
        color: css,
        label: hi === Infinity ? { zh: `≥ ${lo} 米`, en: `≥ ${lo} m` } : { zh: `${lo}–${hi} 米`, en: `${lo}–${hi} m` },
      })),
    ],
  };
}

// Impassable roads by when they became impassable (minutes after the rain started).
export const ROAD_CLASSES = [[0, 30, "#7a0019"], [30, 60, "#d7263d"], [60, Infinity, "#f46d43"]];

export function roadColour(minutes) {
  const hit = ROAD_CLASSES.find(([lo, hi]) => minutes >= lo && minutes < hi) || ROAD_CLASSES[ROAD_CLASSES.length - 1];
  return hit[2];
}

export function roadLegend() {
  return {
    kind: "swatches",
    items: ROAD_CLASSES.map(([lo, hi, css]) => ({
      color: css,
      label: hi === Infinity ? { zh: `${lo} 分钟后`, en: `after ${lo} min` } : { zh: `${lo}–${hi} 分钟`, en: `${lo}–${hi} min` },
    })),
  };
}

/** The depth legend the server sends with the imagery (tiles/depth_imagery.py DEPTH_CLASSES). */
export function depthLegend(classes) {
  return {
    kind: "ramp",
    items: classes.map((c) => ({
      color: c.color,
      label: c.max_m === null ? { zh: `≥ ${c.min_m} 米`, en: `≥ ${c.min_m} m` }
        : { zh: `${c.min_m}–${c.max_m} 米`, en: `${c.min_m}–${c.max_m} m` },
    })),
  };
}
