"""Evaluate a CQL2 AST over rows of an in-memory layer, vectorised.

SQL three-valued logic: every predicate yields a pandas BooleanArray whose NA means
"unknown" (a null property); AND / OR / NOT follow Kleene logic and unknown rows are
dropped at the end. Spatial literals are moved from the filter CRS (in its axis
order) to project x/y once, then tested with the layer's STRtree plus an exact
shapely predicate on the candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely

from twin.query import crs as crsmod
from twin.query.cql2 import (And, Between, Compare, Const, DWithin, Expr, Geom, In, IsNull, Like, Lit, Not, Or,
                             Prop, Spatial)
from twin.query.errors import QueryError
from twin.query.layer import LayerData

GEOMETRY = "geometry"   # the queryable naming a feature's geometry
# op(feature, literal) when the literal is written first: S_WITHIN(lit, f) == S_CONTAINS(f, lit)
CONVERSE = {"s_within": "s_contains", "s_contains": "s_within"}
EXACT = {"s_intersects": shapely.intersects, "s_within": shapely.within, "s_contains": shapely.contains,
         "s_touches": shapely.touches, "s_crosses": shapely.crosses, "s_overlaps": shapely.overlaps,
         "s_equals": shapely.equals}
NUMERIC = ("number", "integer")


@dataclass(frozen=True)
class _Val:
    """A scalar operand: a column slice (`nulls` set) or a literal (`nulls` None)."""

    kind: str
    values: Any
    nulls: np.ndarray | None = None


def _lit_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, np.datetime64):
        return "datetime"
    return "string"


class _Eval:
    def __init__(self, layer: LayerData, rows: np.ndarray, filter_crs: crsmod.CrsInfo, project: crsmod.CrsInfo):
        self.layer, self.rows, self.filter_crs, self.project = layer, rows, filter_crs, project
        self.n = len(rows)

    def _bool(self, values: np.ndarray, nulls: np.ndarray | None = None) -> pd.arrays.BooleanArray:
        mask = np.zeros(self.n, dtype=bool) if nulls is None else nulls
        return pd.arrays.BooleanArray(np.asarray(values, dtype=bool), mask.copy())

    # -- operands
    def scalar(self, node: Any) -> _Val:
        if isinstance(node, Prop):
            if node.name == GEOMETRY:
                raise QueryError("the geometry can only be used in spatial functions", field="filter")
            if node.name not in self.layer.kinds:
                raise QueryError(f"unknown property '{node.name}' (see the queryables)", field="filter")
            col = self.layer.column(node.name)
            kind = "number" if col.kind in NUMERIC else col.kind
            return _Val(kind, col.values[self.rows], col.nulls[self.rows])
        if isinstance(node, Lit):
            return _Val(_lit_kind(node.value), node.value)
        raise QueryError("expected a property or a literal value", field="filter")

    @staticmethod
    def _same(a: _Val, b: _Val, what: str) -> None:
        if a.kind != b.kind:
            raise QueryError(f"cannot {what} a {a.kind} with a {b.kind}", field="filter")

    @staticmethod
    def _nulls(*vals: _Val) -> np.ndarray | None:
        masks = [v.nulls for v in vals if v.nulls is not None]
        return np.logical_or.reduce(masks) if masks else None

    def _full(self, value: bool, nulls: np.ndarray | None) -> pd.arrays.BooleanArray:
        return self._bool(np.full(self.n, value), nulls)

    # -- predicates
    def __call__(self, node: Expr) -> pd.arrays.BooleanArray:
        if isinstance(node, And):
            out = self(node.args[0])
            for arg in node.args[1:]:
                out = out & self(arg)
            return out
        if isinstance(node, Or):
            out = self(node.args[0])
            for arg in node.args[1:]:
                out = out | self(arg)
            return out
        if isinstance(node, Not):
            return ~self(node.arg)
        if isinstance(node, Const):
            return self._full(node.value, None)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Like):
            return self.like(node)
        if isinstance(node, Between):
            a, lo, hi = self.scalar(node.lhs), self.scalar(node.low), self.scalar(node.high)
            if a.kind not in ("number", "datetime"):
                raise QueryError(f"BETWEEN needs numbers or times, not a {a.kind}", field="filter")
            self._same(a, lo, "compare")
            self._same(a, hi, "compare")
            res = (np.asarray(a.values >= lo.values) & np.asarray(a.values <= hi.values))
            out = self._bool(np.broadcast_to(res, (self.n,)), self._nulls(a, lo, hi))
            return ~out if node.negate else out
        if isinstance(node, In):
            a = self.scalar(node.lhs)
            items = [self.scalar(i) for i in node.items]
            for item in items:
                if item.nulls is not None:
                    raise QueryError("IN lists must hold literal values", field="filter")
                self._same(a, item, "compare")
            res = np.isin(a.values, np.array([i.values for i in items], dtype=a.values.dtype
                                             if isinstance(a.values, np.ndarray) else None))
            out = self._bool(np.broadcast_to(res, (self.n,)), a.nulls)
            return ~out if node.negate else out
        if isinstance(node, IsNull):
            if isinstance(node.lhs, Prop) and node.lhs.name == GEOMETRY:
                res = shapely.is_empty(self.layer.geoms[self.rows]) | shapely.is_missing(self.layer.geoms[self.rows])
            else:
                a = self.scalar(node.lhs)
                res = a.nulls if a.nulls is not None else np.full(self.n, False)
            return self._bool(~res if node.negate else res)
        if isinstance(node, Spatial):
            return self.spatial(node)
        if isinstance(node, DWithin):
            return self.dwithin(node)
        raise QueryError("unsupported filter expression", field="filter")

    def compare(self, node: Compare) -> pd.arrays.BooleanArray:
        a, b = self.scalar(node.lhs), self.scalar(node.rhs)
        self._same(a, b, "compare")
        if a.kind == "boolean" and node.op not in ("=", "<>"):
            raise QueryError("booleans can only be tested with = or <>", field="filter")
        op = node.op
        x, y = a.values, b.values
        with np.errstate(invalid="ignore"):
            res = {"=": lambda: x == y, "<>": lambda: x != y, "<": lambda: x < y, "<=": lambda: x <= y,
                   ">": lambda: x > y, ">=": lambda: x >= y}[op]()
        return self._bool(np.broadcast_to(np.asarray(res, dtype=bool), (self.n,)), self._nulls(a, b))

    def like(self, node: Like) -> pd.arrays.BooleanArray:
        a, p = self.scalar(node.lhs), self.scalar(node.pattern)
        if a.kind != "string" or p.kind != "string" or p.nulls is not None:
            raise QueryError("LIKE needs a string property and a string pattern", field="filter")
        regex = re.compile(_like_regex(p.values), re.DOTALL)
        values = a.values if a.nulls is not None else np.array([a.values], dtype=object)
        res = np.fromiter((regex.fullmatch(v) is not None for v in values), dtype=bool, count=len(values))
        out = self._bool(np.broadcast_to(res, (self.n,)), a.nulls)
        return ~out if node.negate else out

    # -- spatial
    def _literal_geom(self, node: Any) -> shapely.Geometry | None:
        if isinstance(node, Geom):
            return crsmod.to_project(node.geom, self.filter_crs, self.project)
        if isinstance(node, Prop) and node.name == GEOMETRY:
            return None
        raise QueryError(f"spatial functions take the '{GEOMETRY}' property and a geometry literal",
                         field="filter")

    def _operands(self, lhs: Any, rhs: Any) -> tuple[shapely.Geometry | None, shapely.Geometry | None]:
        return self._literal_geom(lhs), self._literal_geom(rhs)

    def _hits(self, idx: np.ndarray) -> np.ndarray:
        full = np.zeros(len(self.layer), dtype=bool)
        full[idx] = True
        return full[self.rows]

    def spatial(self, node: Spatial) -> pd.arrays.BooleanArray:
        a, b = self._operands(node.lhs, node.rhs)
        op = node.op
        if a is not None and b is not None:
            fn = EXACT.get(op)
            res = (not shapely.intersects(a, b)) if op == "s_disjoint" else bool(fn(a, b))
            return self._full(res, None)
        if a is None and b is None:
            raise QueryError("spatial functions need one geometry literal", field="filter")
        lit = b if b is not None else a
        if a is not None:             # literal first: use the converse relation
            op = CONVERSE.get(op, op)
        base = "s_intersects" if op == "s_disjoint" else op
        cand = self.layer.tree.query(lit)
        if len(cand):
            cand = cand[EXACT[base](self.layer.geoms[cand], lit)]
        hits = self._hits(cand)
        return self._bool(~hits if op == "s_disjoint" else hits)

    def dwithin(self, node: DWithin) -> pd.arrays.BooleanArray:
        a, b = self._operands(node.lhs, node.rhs)
        if a is not None and b is not None:
            return self._full(bool(shapely.dwithin(a, b, node.distance)), None)
        if a is None and b is None:
            raise QueryError("S_DWITHIN needs one geometry literal", field="filter")
        lit = b if b is not None else a
        return self._bool(self._hits(self.layer.tree.query(lit, predicate="dwithin", distance=node.distance)))


def _like_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return "".join(out)


def evaluate(expr: Expr, layer: LayerData, rows: np.ndarray, filter_crs: crsmod.CrsInfo,
             project: crsmod.CrsInfo) -> np.ndarray:
    """Plain bool mask over `rows`: True where the filter is TRUE (unknown counts as false)."""
    result = _Eval(layer, rows, filter_crs, project)(expr)
    return result.fillna(False).to_numpy(dtype=bool)


def check(expr: Expr, layer: LayerData, filter_crs: crsmod.CrsInfo, project: crsmod.CrsInfo) -> None:
    """Validate names and types against the layer without scanning it (evaluates on zero rows)."""
    _Eval(layer, np.arange(0), filter_crs, project)(expr)
