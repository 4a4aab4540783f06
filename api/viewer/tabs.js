// One scenario panel at a time in the right column: flood, evacuation or live operations.
import { addStrings } from "./i18n.js";

addStrings({
  zh: { tabFlood: "内涝", tabEvacuation: "疏散", tabOps: "实时监测" },
  en: { tabFlood: "Flood", tabEvacuation: "Evacuation", tabOps: "Live" },
});

export class ScenarioTabs {
  constructor(element, panels, initial = "flood") {
    this.element = element;
    this.panels = panels;           // {name: element}
    this.listeners = [];
    element.querySelectorAll("[data-tab]").forEach((button) =>
      button.addEventListener("click", () => this.show(button.dataset.tab)));
    this.show(initial);
  }

  show(name) {
    if (!(name in this.panels)) throw new Error(`no tab '${name}'`);
    this.current = name;
    for (const [key, panel] of Object.entries(this.panels)) panel.hidden = key !== name;
    this.element.querySelectorAll("[data-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
    this.listeners.forEach((fn) => fn(name));
  }

  onChange(fn) { this.listeners.push(fn); }
}
