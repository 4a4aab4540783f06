// Labels of the live operations view (Chinese first, English on the toggle).
import { addStrings } from "./i18n.js";

addStrings({
  zh: {
    opsTitle: "实时监测", opsHint: "传感器实时读数与告警事件（阈值与滞回由服务器判定）",
    opsNormal: "正常", opsWarning: "预警", opsAlarm: "报警", opsOffline: "离线",
    opsForecast: "预报预警", opsConnected: "实时连接", opsConnecting: "正在连接…", opsDisconnected: "连接中断",
    opsRetry: "秒后重连", opsEvents: "告警事件", opsNoEvents: "暂无告警事件", opsSensors: "传感器",
    opsNoSensors: "此孪生尚未接入传感器（运行 twin sensors replay 接入示例网络）",
    opsLoadFailed: "无法读取传感器网络", opsAll: "全部",
    kindRain: "雨量站", kindStage: "水位站", kindWaterlogging: "积水监测点", kindPump: "排涝泵站", kindOther: "传感器",
    evOpen: "未确认", evAcknowledged: "已确认", evClosed: "已关闭",
    opsAck: "确认", opsClose: "关闭", opsOpened: "发生", opsPeak: "峰值", opsBy: "处理人",
    opsNeedKey: "确认或关闭事件需要 API 密钥：请点击右上角“密钥”输入。",
    opsBadKey: "API 密钥无效，请重新输入。", opsNoAlertScope: "此密钥没有处理告警的权限（需要 alerts:write）。",
    opsActionFailed: "操作失败",
    opsLatest: "最新读数", opsFeature: "关联要素", opsNoReading: "暂无读数",
    opsLoadingChart: "正在读取观测…", opsNoData: "该数据流暂无观测",
    opsWarnLine: "预警", opsAlarmLine: "报警", opsRunning: "运行", opsStopped: "停机",
    opsStaleHint: "超过 15 分钟或 3 个采样间隔无读数",
    featRoads: "道路", featBuildings: "建筑", opsExpected: "预计", opsExpectedAt: "预计达到",
  },
  en: {
    opsTitle: "Live operations", opsHint: "Live readings and alert events (the server judges thresholds and hysteresis)",
    opsNormal: "Normal", opsWarning: "Warning", opsAlarm: "Alarm", opsOffline: "Offline",
    opsForecast: "Forecast warning", opsConnected: "Live", opsConnecting: "Connecting…", opsDisconnected: "Disconnected",
    opsRetry: "s to retry", opsEvents: "Alert events", opsNoEvents: "No alert events", opsSensors: "Sensors",
    opsNoSensors: "No sensors in this twin yet (twin sensors replay installs the sample network)",
    opsLoadFailed: "Could not read the sensor network", opsAll: "All",
    kindRain: "Rain gauge", kindStage: "River stage", kindWaterlogging: "Waterlogging point", kindPump: "Pump station",
    kindOther: "Sensor",
    evOpen: "Open", evAcknowledged: "Acknowledged", evClosed: "Closed",
    opsAck: "Acknowledge", opsClose: "Close", opsOpened: "Opened", opsPeak: "Peak", opsBy: "by",
    opsNeedKey: "Acknowledging or closing events needs an API key: use “Key” at the top right.",
    opsBadKey: "The API key is not valid; enter it again.",
    opsNoAlertScope: "This key may not handle alerts (scope alerts:write needed).",
    opsActionFailed: "Action failed",
    opsLatest: "Latest", opsFeature: "Twin feature", opsNoReading: "No reading yet",
    opsLoadingChart: "Reading observations…", opsNoData: "No observations in this datastream",
    opsWarnLine: "Warning", opsAlarmLine: "Alarm", opsRunning: "running", opsStopped: "stopped",
    opsStaleHint: "No reading for 15 min or 3 sampling intervals",
    featRoads: "Road", featBuildings: "Building", opsExpected: "expected", opsExpectedAt: "reached by",
  },
});

export const STATE_KEYS = { normal: "opsNormal", warning: "opsWarning", alarm: "opsAlarm", offline: "opsOffline" };
export const KIND_KEYS = { rain: "kindRain", stage: "kindStage", waterlogging: "kindWaterlogging", pump: "kindPump" };
export const EVENT_STATE_KEYS = { open: "evOpen", acknowledged: "evAcknowledged", closed: "evClosed" };
