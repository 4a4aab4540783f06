// The live operations view, "one map" (placeholder until the view lands).
export class OpsPanel {
  constructor(viewer, registry, element, options = {}) {
    Object.assign(this, { viewer, registry, element, options });
  }
}
