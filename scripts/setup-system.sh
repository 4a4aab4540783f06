#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing. Mosquitto is the
# MQTT broker of the sensor tests (they start private instances of it).
# Chromium drives the browser tests (Playwright, SwiftShader WebGL); the CJK
# font renders Chinese labels in the viewer's screenshots.
set -euo pipefail

PACKAGES=(chromium fonts-noto-cjk mosquitto)
# Node.js and npm only when the machine has none (do not replace another install).
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
