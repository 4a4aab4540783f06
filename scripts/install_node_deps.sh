#!/usr/bin/env bash
# Install the Node tooling pinned in package-lock.json (CesiumJS for the viewer and
# the browser tests, the Khronos glTF-Validator for the tile tests). Idempotent:
# does nothing when node_modules already matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi

stamp=node_modules/.city-twin-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" \
      && -f node_modules/cesium/Build/Cesium/Cesium.js \
      && -f node_modules/gltf-validator/index.js ]]; then
    echo "node_modules is up to date"
    exit 0
fi

npm ci --no-audit --no-fund
test -f node_modules/cesium/Build/Cesium/Cesium.js
test -f node_modules/gltf-validator/index.js
echo "$want" > "$stamp"
echo "installed: cesium $(node -p "require('./node_modules/cesium/package.json').version"), gltf-validator $(node -p "require('./node_modules/gltf-validator/package.json').version")"
