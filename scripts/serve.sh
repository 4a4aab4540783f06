#!/usr/bin/env bash
# Serve a built twin with live sensors: the MQTT broker, the sample sensor network, a local operator
# key, nowcasts triggered by alarms, then the viewer and APIs on HOST:PORT.
#   usage: scripts/serve.sh TWIN_DIR [HOST] [PORT]
set -euo pipefail
TWIN_DIR=${1:?twin folder}
HOST=${2:-127.0.0.1}
PORT=${3:-8000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/.venv/bin"
STATE="$ROOT/build"
mkdir -p "$STATE/mosquitto"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 1883; then
    conf="$STATE/mosquitto/mosquitto.conf"
    { cat "$ROOT/scripts/mosquitto.conf"
      echo "persistence_location $STATE/mosquitto/"
      echo "user $(id -un)"
      echo "log_dest file $STATE/mosquitto/mosquitto.log"; } > "$conf"
    mosquitto -d -c "$conf"
    for _ in $(seq 50); do port_open 1883 && break; sleep 0.1; done
fi
port_open 1883 || { echo "error: no MQTT broker on 127.0.0.1:1883 (see $STATE/mosquitto/mosquitto.log)" >&2; exit 1; }

KEYS="$STATE/keys.toml"
if [ ! -f "$KEYS" ]; then
    key=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(18))')
    umask 077
    cat > "$KEYS" <<TOML
# Local keys for this machine's demo server (scripts/serve.sh). Not for production.
[[keys]]
key = "$key"
name = "local operator"
clearance = "restricted"
scopes = ["scenario:run", "sensors:write", "alerts:write"]
TOML
fi
"$BIN/twin" sensors install "$TWIN_DIR"
echo "operator API key (viewer: 密钥 / Key button): $(sed -n 's/^key = "\(.*\)"/\1/p' "$KEYS")"
echo "live demo: $BIN/twin sensors replay $TWIN_DIR --storm tianhe-2h --speed 60x"

export TWIN_API_KEYS_FILE="$KEYS" TWIN_MQTT_HOST=127.0.0.1 TWIN_NOWCAST_ON_ALARM=true
exec "$BIN/twin" serve "$TWIN_DIR" --host "$HOST" --port "$PORT"
