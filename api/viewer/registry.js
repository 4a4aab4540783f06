// The layer registry: anything drawn on the map registers here and gets a row in the layer panel.
//
//   twin.layers.register({
//     id: "sensors", title: {zh: "传感器", en: "Sensors"}, order: 50, visible: true,
//     show() {...}, hide() {...},
//     legend: () => [{color: "#e33", label: {zh, en}}] | {gradient: [...colours], ticks: [...]} | null,
//     controls: (container) => {...},   // optional extra controls under the title
//   })
//
// Sensors and scenario overlays plug in the same way later.
export class LayerRegistry {
  constructor() {
    this._layers = new Map();
    this._listeners = [];
  }

  register(layer) {
    if (!layer || !layer.id || typeof layer.show !== "function" || typeof layer.hide !== "function") {
      throw new Error("a layer needs an id, show() and hide()");
    }
    const entry = layer;                 // kept as given: the layer's own methods see the same state
    entry.order ??= 100;
    entry.visible ??= true;
    entry.legend ??= null;
    this._layers.set(entry.id, entry);
    entry.visible ? entry.show() : entry.hide();
    this._changed();
    return entry;
  }

  unregister(id) {
    const entry = this._layers.get(id);
    if (entry) {
      entry.hide();
      this._layers.delete(id);
      this._changed();
    }
  }

  get(id) {
    return this._layers.get(id);
  }

  list() {
    return [...this._layers.values()].sort((a, b) => a.order - b.order);
  }

  setVisible(id, visible) {
    const entry = this._layers.get(id);
    if (!entry) throw new Error(`no layer '${id}'`);
    entry.visible = !!visible;
    visible ? entry.show() : entry.hide();
    this._changed();
  }

  /** Call after a layer's legend changed (for example a new colour scheme). */
  refresh() {
    this._changed();
  }

  onChange(fn) {
    this._listeners.push(fn);
  }

  _changed() {
    this._listeners.forEach((fn) => fn(this));
  }
}
