#!/usr/bin/env bash
# Peer for bench/bench_features.py: pygeoapi 0.24 serving the same 50,000 synthetic buildings
# from PostGIS. Idempotent: re-running only redoes what is missing.
#
#   bash bench/peers/pygeoapi/setup.sh            # then: .venv/bin/python bench/bench_features.py
#
# Installs (if missing): Debian postgresql-15-postgis-3 and wrk; a venv in
# bench/peers/pygeoapi/.venv (Python >= 3.12: Debian's python3 if new enough, else the newest
# 3.12/3.13 under ~/.pyenv/versions) with pygeoapi 0.24, its PostgreSQL provider deps and
# gunicorn + uvicorn; loads the buildings into database $PG_DB (default pygeoapi_bench) with a
# GIST index; writes pygeoapi-config.yml and the OpenAPI document next to this script.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
PG_DB="${PG_DB:-pygeoapi_bench}"
BUILDINGS="${BUILDINGS:-50000}"
SEED="${SEED:-1}"

# 1. system packages
need=()
dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1 || need+=(postgresql-15-postgis-3)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
pg_isready -h 127.0.0.1 -q || pg_ctlcluster --skip-systemctl-redirect 15 main start

# 2. peer venv with Python >= 3.12
py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }
if [[ ! -x "$HERE/.venv/bin/python" ]] || ! py_ok "$HERE/.venv/bin/python"; then
  PY=""
  if py_ok /usr/bin/python3; then PY=/usr/bin/python3; fi
  if [[ -z "$PY" ]]; then
    for v in $(ls -d "$HOME"/.pyenv/versions/3.1[2-9]* 2>/dev/null | sort -V -r); do
      if py_ok "$v/bin/python"; then PY="$v/bin/python"; break; fi
    done
  fi
  [[ -n "$PY" ]] || { echo "no Python >= 3.12 found" >&2; exit 1; }
  rm -rf "$HERE/.venv"
  "$PY" -m venv "$HERE/.venv"
fi
if ! "$HERE/.venv/bin/python" -c 'import pygeoapi, psycopg2, geoalchemy2, gunicorn, uvicorn, starlette' 2>/dev/null; then
  "$HERE/.venv/bin/pip" install -q --upgrade pip
  "$HERE/.venv/bin/pip" install -q "pygeoapi==0.24.*" psycopg2-binary SQLAlchemy GeoAlchemy2 pygeofilter starlette \
    gunicorn uvicorn uvloop httptools
fi

# 3. data: the same twin bench_features.py serves, in PostGIS (EPSG:4326) with a GIST index
"$ROOT/.venv/bin/python" "$HERE/load_postgis.py" --db "$PG_DB" --buildings "$BUILDINGS" --seed "$SEED"

# 4. pygeoapi config (PostgreSQL provider, same collection) and its OpenAPI document
cat > "$HERE/pygeoapi-config.yml" <<YAML
server:
  bind: {host: 127.0.0.1, port: 5000}
  url: http://127.0.0.1:5000
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  language: en-US
  cors: false
  pretty_print: false
  limits: {default_items: 100, max_items: 1000}
  map:
    url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    attribution: OpenStreetMap
logging:
  level: ERROR
metadata:
  identification:
    title: city-twin benchmark peer
    description: pygeoapi over PostGIS, same buildings as the city twin
    keywords: [benchmark]
    keywords_type: theme
    terms_of_service: https://creativecommons.org/licenses/by/4.0/
    url: https://example.org
  license: {name: CC-BY 4.0, url: https://creativecommons.org/licenses/by/4.0/}
  provider: {name: city-twin, url: https://example.org}
  contact: {name: bench, position: bench, address: -, city: -, stateorprovince: -, postalcode: -, country: -,
            phone: -, fax: -, email: bench@example.org, url: https://example.org, hours: -, instructions: -,
            role: pointOfContact}
resources:
  buildings:
    type: collection
    title: buildings
    description: ${BUILDINGS} synthetic building footprints
    keywords: [buildings]
    links: []
    extents:
      spatial: {bbox: [-180, -90, 180, 90], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}
    providers:
      - type: feature
        name: PostgreSQL
        data: {host: 127.0.0.1, port: 5432, dbname: ${PG_DB}, user: postgres, password: "", search_path: [public]}
        id_field: id
        table: buildings
        geom_field: geom
YAML
PYGEOAPI_CONFIG="$HERE/pygeoapi-config.yml" PYGEOAPI_OPENAPI="$HERE/pygeoapi-openapi.yml" \
  "$HERE/.venv/bin/pygeoapi" openapi generate "$HERE/pygeoapi-config.yml" --output-file "$HERE/pygeoapi-openapi.yml"
echo "pygeoapi peer ready: $HERE (database $PG_DB)"
