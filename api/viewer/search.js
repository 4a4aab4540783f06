// The search box: /api/search?q=, a result list, fly to the chosen result.
import { getJSON } from "./api.js";
import { label, t } from "./i18n.js";

export class SearchBox {
  constructor(form, onChoose) {
    this.form = form;
    this.input = form.querySelector("input");
    this.list = form.querySelector(".search-results");
    this.onChoose = onChoose;
    this.results = [];
    this.active = -1;
    let timer = null;
    this.input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.query(this.input.value), 200);
    });
    this.input.addEventListener("keydown", (e) => this.key(e));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const results = await this.query(this.input.value);
      if (results.length) this.choose(Math.max(this.active, 0));
    });
    document.addEventListener("click", (e) => { if (!form.contains(e.target)) this.close(); });
  }

  async query(q) {
    q = q.trim();
    if (!q) { this.close(); return []; }
    try {
      const data = await getJSON(`/api/search?q=${encodeURIComponent(q)}&limit=10`);
      this.results = data.results;
      this.active = -1;
      this.render();
      return this.results;
    } catch (error) {
      this.results = [];
      this.render(t("searchFailed"));
      return [];
    }
  }

  render(message) {
    this.list.replaceChildren();
    if (!this.results.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = message || t("searchNone");
      this.list.appendChild(li);
    }
    this.results.forEach((hit, i) => {
      const li = document.createElement("li");
      li.className = i === this.active ? "active" : "";
      li.dataset.id = hit.id;
      const name = document.createElement("span");
      name.className = "hit-name";
      name.textContent = hit.name ? (hit.name_en ? label({ zh: hit.name, en: hit.name_en }) : hit.name) : hit.id;
      const meta = document.createElement("span");
      meta.className = "hit-meta";
      meta.textContent = [layerTitle(hit.layer), hit.matches > 1 ? `${hit.matches} ${t("features")}` : "",
        hit.height != null ? `${Math.round(hit.height)} m` : ""].filter(Boolean).join(" · ");
      li.append(name, meta);
      li.addEventListener("mousedown", (e) => { e.preventDefault(); this.choose(i); });
      this.list.appendChild(li);
    });
    this.form.classList.add("open");
  }

  key(e) {
    if (!this.results.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = this.results.length;
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.render();
    } else if (e.key === "Escape") {
      this.close();
    }
  }

  choose(i) {
    const hit = this.results[i];
    if (!hit) return;
    this.close();
    this.input.value = hit.name || hit.id;
    this.onChoose(hit);
  }

  close() {
    this.form.classList.remove("open");
  }
}

const LAYER_TITLES = {
  buildings: { zh: "建筑", en: "Building" }, roads: { zh: "道路", en: "Road" }, pois: { zh: "兴趣点", en: "POI" },
  bim: { zh: "BIM 构件", en: "BIM element" }, water: { zh: "水体", en: "Water" }, landuse: { zh: "用地", en: "Land use" },
};
const layerTitle = (layer) => label(LAYER_TITLES[layer] || layer);
