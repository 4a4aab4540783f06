"""Load the benchmark's synthetic buildings into PostGIS for the pygeoapi peer.

    .venv/bin/python bench/peers/pygeoapi/load_postgis.py --db pygeoapi_bench [--buildings 50000 --seed 1]

Builds (or reuses) the very twin that bench/bench_features.py serves, reprojects the
buildings layer to EPSG:4326 (lon/lat, what PostGIS stores for 4326) so pygeoapi answers
CRS84 bbox queries without per-request transforms, and bulk-loads it with psql COPY
(no SQLAlchemy/GeoAlchemy needed in the project venv). Creates a GIST index and ANALYZEs.
Idempotent: the table is dropped and reloaded only when its row count differs.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SQL_TYPES = {"bool": "boolean", "int64": "bigint", "float64": "double precision"}


def psql(db: str, sql: str, *, stdin: bytes | None = None, args: list[str] | None = None) -> str:
    cmd = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qAt", *(args or [])]
    cmd += ["-c", sql]
    return subprocess.run(cmd, input=stdin, capture_output=True, check=True).stdout.decode().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="pygeoapi_bench")
    ap.add_argument("--table", default="buildings")
    ap.add_argument("--buildings", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-features")
    args = ap.parse_args()

    if psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{args.db}'") != "1":
        psql("postgres", f'CREATE DATABASE "{args.db}"')
    psql(args.db, "CREATE EXTENSION IF NOT EXISTS postgis")
    exists = psql(args.db, f"SELECT to_regclass('public.{args.table}') IS NOT NULL") == "t"
    if exists and int(psql(args.db, f"SELECT count(*) FROM {args.table}")) == args.buildings:
        print(f"{args.db}.{args.table} already holds {args.buildings} rows", file=sys.stderr)
        return

    from bench_features import build
    from twin.store.folder import FolderStore

    args.workdir.mkdir(parents=True, exist_ok=True)
    twin_dir = build(args.buildings, args.workdir, args.seed)
    gdf = FolderStore(twin_dir).read_layer("buildings").to_crs("EPSG:4326")
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    cols = [f'"{c}" {SQL_TYPES.get(str(attrs[c].dtype), "text")}' for c in attrs.columns if c != "id"]
    psql(args.db, f"DROP TABLE IF EXISTS {args.table}")
    psql(args.db, f'CREATE TABLE {args.table} (id text PRIMARY KEY, {", ".join(cols)}, '
                  f'geom geometry(Geometry, 4326))')
    attrs = attrs[["id"] + [c for c in attrs.columns if c != "id"]]
    attrs["geom"] = ["SRID=4326;" + w for w in shapely.to_wkt(gdf.geometry.values, rounding_precision=-1)]
    buf = io.StringIO()
    attrs.to_csv(buf, index=False, header=False, na_rep="\\N")
    names = ", ".join(f'"{c}"' for c in attrs.columns)
    psql(args.db, f"\\copy {args.table} ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
         stdin=buf.getvalue().encode())
    psql(args.db, f"CREATE INDEX {args.table}_geom_gist ON {args.table} USING GIST (geom)")
    psql(args.db, f"ANALYZE {args.table}")
    print(f"loaded {psql(args.db, f'SELECT count(*) FROM {args.table}')} rows into {args.db}.{args.table}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
