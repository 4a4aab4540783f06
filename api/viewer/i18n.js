// Chinese and English labels; Chinese by default. Everything visible goes through t() or label().
const STRINGS = {
  zh: {
    appTitle: "城市信息模型", layers: "图层", legend: "图例", display: "显示", info: "要素信息",
    searchPlaceholder: "搜索名称或编号…", searchNone: "未找到匹配结果", searchFailed: "搜索失败",
    colourBy: "建筑着色", byHeight: "按高度", byUse: "按用途", shadows: "阴影", timeOfDay: "时间",
    localTime: "当地时间", home: "回到全景", close: "关闭", flyTo: "定位", signIn: "密钥", signOut: "退出",
    keyPrompt: "请输入 API 密钥（仅保存在本次会话中）：", loading: "正在加载…", noTiles: "三维瓦片尚未生成（运行 twin tiles）",
    terrainFallback: "地形瓦片不可用，使用椭球面", unknown: "未知", clickHint: "点击建筑或构件查看属性",
    layerBuildings: "建筑", layerUnderground: "地下建筑", layerBim: "建筑信息模型 (BIM)", layerBase: "底图（地形晕渲）",
    results: "结果", features: "个要素", yes: "是", no: "否", ifcData: "IFC 数据", attributes: "属性",
    legendRoads: "道路", legendMajorRoads: "主干道", legendFootprints: "建筑轮廓", legendWater: "水体", legendRelief: "地形晕渲",
    lang: "EN",
    flood: "内涝情景", floodHint: "设定降雨，模拟城市内涝并评估受影响建筑、人口与道路",
    floodPresets: "降雨情景", presetP20: "20 年一遇", presetP50: "50 年一遇", presetBurst: "短时强降雨",
    rainTotal: "降雨量", rainDuration: "历时", horizon: "模拟时长", horizonShort: "模拟", resolution: "网格分辨率",
    mm: "毫米", hours: "小时", run: "开始模拟", running: "模拟中…", needKey: "运行情景需要 API 密钥：请点击右上角“密钥”输入。",
    badKey: "API 密钥无效，请重新输入。", noScope: "此密钥没有运行情景的权限（需要 scenario:run）。",
    runFailed: "模拟失败", queued: "排队中", simTime: "模拟时间", min: "分钟",
    summary: "影响评估", buildingsFlooded: "受淹建筑", people: "受影响人口", roadsClosed: "不可通行道路",
    maxDepth: "最大水深", floodedArea: "积水面积", unitBuildings: "栋", unitPeople: "人", km: "公里", m: "米", km2: "平方公里",
    timeline: "水深动画", play: "播放", pause: "暂停", hydrograph: "水深过程线", pickPoint: "在地图上选点",
    pickHint: "点击地图上任意位置查看该点水深随时间变化", pickCancel: "取消选点", depthAt: "该点水深",
    impassableLine: "车辆不可通行 (0.3 米)", recentJobs: "最近情景", noJobs: "暂无情景", open: "打开",
    statusAccepted: "排队", statusRunning: "运行中", statusSuccessful: "完成", statusFailed: "失败", statusDismissed: "已撤销",
    layerFloodDepth: "内涝水深（动画）", layerFloodMax: "最大水深", layerFloodBuildings: "受淹建筑",
    layerFloodRoads: "不可通行道路", depthLegend: "水深", outsideGrid: "该点不在模拟范围内",
    collapse: "收起", expand: "展开", newScenario: "新情景", scenarioOf: "情景",
  },
  en: {
    appTitle: "City Information Model", layers: "Layers", legend: "Legend", display: "Display", info: "Feature",
    searchPlaceholder: "Search by name or id…", searchNone: "No matches", searchFailed: "Search failed",
    colourBy: "Colour buildings", byHeight: "By height", byUse: "By use", shadows: "Shadows", timeOfDay: "Time",
    localTime: "local time", home: "Home view", close: "Close", flyTo: "Zoom to", signIn: "Key", signOut: "Sign out",
    keyPrompt: "API key (kept for this session only):", loading: "Loading…", noTiles: "3D tiles not built yet (run twin tiles)",
    terrainFallback: "Terrain tiles unavailable; using the ellipsoid", unknown: "unknown", clickHint: "Click a building or BIM element",
    layerBuildings: "Buildings", layerUnderground: "Underground buildings", layerBim: "BIM models", layerBase: "Base map (relief)",
    results: "results", features: "features", yes: "yes", no: "no", ifcData: "IFC data", attributes: "Attributes",
    legendRoads: "Roads", legendMajorRoads: "Main roads", legendFootprints: "Building footprints", legendWater: "Water",
    legendRelief: "Hillshade", lang: "中文",
    flood: "Flood scenario", floodHint: "Set a storm, simulate surface flooding and see the buildings, people and roads affected",
    floodPresets: "Storm", presetP20: "20-year", presetP50: "50-year", presetBurst: "Cloudburst",
    rainTotal: "Rainfall", rainDuration: "Duration", horizon: "Simulate", horizonShort: "simulated", resolution: "Grid cell",
    mm: "mm", hours: "h", run: "Run scenario", running: "Running…", needKey: "Running a scenario needs an API key: use “Key” at the top right.",
    badKey: "The API key is not valid; enter it again.", noScope: "This key may not run scenarios (scope scenario:run needed).",
    runFailed: "Scenario failed", queued: "Queued", simTime: "Simulated", min: "min",
    summary: "Impact", buildingsFlooded: "Buildings flooded", people: "People affected", roadsClosed: "Roads impassable",
    maxDepth: "Max depth", floodedArea: "Flooded area", unitBuildings: "", unitPeople: "", km: "km", m: "m", km2: "km²",
    timeline: "Depth animation", play: "Play", pause: "Pause", hydrograph: "Depth at a point", pickPoint: "Pick a point",
    pickHint: "Click anywhere on the map to see the water depth there over time", pickCancel: "Cancel", depthAt: "Depth here",
    impassableLine: "Impassable to cars (0.3 m)", recentJobs: "Recent scenarios", noJobs: "No scenarios yet", open: "Open",
    statusAccepted: "queued", statusRunning: "running", statusSuccessful: "done", statusFailed: "failed", statusDismissed: "dismissed",
    layerFloodDepth: "Flood depth (animated)", layerFloodMax: "Maximum depth", layerFloodBuildings: "Flooded buildings",
    layerFloodRoads: "Impassable roads", depthLegend: "Depth", outsideGrid: "That point is outside the modelled area",
    collapse: "Collapse", expand: "Expand", newScenario: "New scenario", scenarioOf: "Scenario",
  },
};

const FIELDS = {
  id: ["编号", "ID"], source: ["数据来源", "Source"], source_id: ["来源编号", "Source ID"], name: ["名称", "Name"],
  use: ["用途", "Use"], use_raw: ["原始用途", "Use (source)"], height: ["高度", "Height"],
  height_rule: ["高度来源", "Height from"], levels: ["层数", "Storeys"], ground: ["地面高程", "Ground elevation"],
  roof: ["屋顶高程", "Roof elevation"], underground: ["地下", "Underground"], area: ["占地面积", "Footprint area"],
  population: ["人口", "Population"], capacity: ["容量", "Capacity"], global_id: ["GlobalId", "GlobalId"],
  ifc_class: ["IFC 类型", "IFC class"], storey: ["楼层", "Storey"], model: ["模型", "Model"],
  z_min: ["底部高程", "Bottom elevation"], z_max: ["顶部高程", "Top elevation"],
};

const UNITS = { height: "m", ground: "m", roof: "m", z_min: "m", z_max: "m", area: "m²" };

const VALUES = {
  use: {
    residential: ["住宅", "Residential"], commercial: ["商业", "Commercial"], office: ["办公", "Office"],
    industrial: ["工业", "Industrial"], school: ["教育", "Education"], health: ["医疗", "Health"],
    public: ["公共服务", "Public"], transport: ["交通", "Transport"], structure: ["构筑物", "Structure"],
    religious: ["宗教", "Religious"], other: ["其他", "Other"], unknown: ["未知", "Unknown"],
  },
  height_rule: {
    explicit: ["数据标注", "Source value"], levels: ["按层数估算", "From storeys"], dsm_dtm: ["由 DSM−DTM 计算", "DSM − DTM"],
    type_default: ["按类型默认", "Type default"], default: ["默认值", "Default"], unknown: ["未知", "Unknown"],
  },
  ifc_class: {
    IfcWall: ["墙", "Wall"], IfcWallStandardCase: ["墙", "Wall"], IfcSlab: ["楼板/屋面", "Slab / roof"],
    IfcRoof: ["屋顶", "Roof"], IfcWindow: ["窗", "Window"], IfcDoor: ["门", "Door"], IfcBeam: ["梁", "Beam"],
    IfcColumn: ["柱", "Column"], IfcMember: ["杆件", "Member"], IfcStair: ["楼梯", "Stair"],
    IfcRailing: ["栏杆", "Railing"], IfcSpace: ["空间", "Space"], IfcSite: ["场地", "Site"],
    IfcBuildingElementProxy: ["其他构件", "Other element"],
  },
};

let lang = localStorage.getItem("twin.lang") === "en" ? "en" : "zh";
const listeners = [];
const idx = () => (lang === "zh" ? 0 : 1);

export const getLang = () => lang;
export const t = (key) => STRINGS[lang][key] ?? STRINGS.zh[key] ?? key;
/** A {zh, en} pair (or a plain string) in the current language. */
export const label = (pair) => (pair && typeof pair === "object" ? pair[lang] || pair.zh || pair.en : pair ?? "");
export const fieldLabel = (name) => (FIELDS[name] ? FIELDS[name][idx()] : name);
export const unitOf = (name) => UNITS[name] || "";
export function valueLabel(field, value) {
  const entry = VALUES[field] && VALUES[field][value];
  if (!entry) return value;
  return field === "ifc_class" ? `${entry[idx()]} (${value})` : entry[idx()];
}
export const pairOf = (field, value) => {
  const entry = VALUES[field] && VALUES[field][value];
  return entry ? { zh: entry[0], en: entry[1] } : { zh: value, en: value };
};

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem("twin.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  applyStatic(document);
  listeners.forEach((fn) => fn(lang));
}

/** Add a module's own strings: addStrings({zh: {...}, en: {...}}). Keys must not clash with existing ones. */
export function addStrings(table) {
  for (const code of ["zh", "en"]) {
    for (const [key, value] of Object.entries(table[code] || {})) {
      if (key in STRINGS[code] && STRINGS[code][key] !== value) console.warn(`i18n: '${key}' redefined`);
      STRINGS[code][key] = value;
    }
  }
}

export function onLangChange(fn) {
  listeners.push(fn);
}

/** Fill elements marked data-i18n (text), data-i18n-placeholder and data-i18n-title. */
export function applyStatic(root) {
  root.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = t(el.dataset.i18n)));
  root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => (el.placeholder = t(el.dataset.i18nPlaceholder)));
  root.querySelectorAll("[data-i18n-title]").forEach((el) => (el.title = t(el.dataset.i18nTitle)));
}
