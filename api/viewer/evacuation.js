// The evacuation scenario panel (placeholder until the panel lands).
export class EvacuationPanel {
  constructor(viewer, registry, element, options = {}) {
    Object.assign(this, { viewer, registry, element, options });
  }
}
