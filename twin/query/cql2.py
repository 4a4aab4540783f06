"""CQL2 (OGC 21-065) text and JSON -> a small typed AST.

Supported: comparisons (= <> < <= > >=), LIKE (% and _ wildcards, backslash escape),
IN, BETWEEN, IS [NOT] NULL, AND / OR / NOT, TRUE / FALSE, DATE() / TIMESTAMP()
literals, the spatial functions S_INTERSECTS, S_DISJOINT, S_WITHIN, S_CONTAINS,
S_TOUCHES, S_CROSSES, S_OVERLAPS, S_EQUALS on WKT / GeoJSON / BBOX literals, and
S_DWITHIN(geom, geom, distance[, units]) with the distance in metres of the
project CRS. Parsing uses lark (LALR); every syntax error becomes a QueryError
on the `filter` parameter with the position of the fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Union

import numpy as np
import shapely
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedInput, VisitError

from twin.query.errors import QueryError

SPATIAL_OPS = ("s_intersects", "s_disjoint", "s_within", "s_contains", "s_touches", "s_crosses",
               "s_overlaps", "s_equals")
COMPARISONS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
UNITS = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
         "km": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "kilometre": 1000.0, "kilometres": 1000.0}


# -- AST ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prop:
    name: str


@dataclass(frozen=True)
class Lit:
    value: Any                   # str | float | int | bool | np.datetime64


@dataclass(frozen=True)
class Geom:
    geom: shapely.Geometry       # in the filter CRS axis order, as written


@dataclass(frozen=True)
class Compare:
    op: str
    lhs: Any
    rhs: Any


@dataclass(frozen=True)
class Like:
    lhs: Any
    pattern: Any
    negate: bool = False


@dataclass(frozen=True)
class Between:
    lhs: Any
    low: Any
    high: Any
    negate: bool = False


@dataclass(frozen=True)
class In:
    lhs: Any
    items: tuple
    negate: bool = False


@dataclass(frozen=True)
class IsNull:
    lhs: Any
    negate: bool = False


@dataclass(frozen=True)
class And:
    args: tuple


@dataclass(frozen=True)
class Or:
    args: tuple


@dataclass(frozen=True)
class Not:
    arg: Any


@dataclass(frozen=True)
class Const:
    value: bool


@dataclass(frozen=True)
class Spatial:
    op: str                      # one of SPATIAL_OPS
    lhs: Any
    rhs: Any


@dataclass(frozen=True)
class DWithin:
    lhs: Any
    rhs: Any
    distance: float              # metres


Expr = Union[Compare, Like, Between, In, IsNull, And, Or, Not, Const, Spatial, DWithin]


# -- literals ------------------------------------------------------------------------------------
def date_literal(text: str) -> np.datetime64:
    try:
        return np.datetime64(date.fromisoformat(text).isoformat(), "ns")
    except (ValueError, TypeError):
        raise QueryError(f"'{text}' is not a date (YYYY-MM-DD)", field="filter") from None


def timestamp_literal(text: str) -> np.datetime64:
    try:
        if not isinstance(text, str) or "T" not in text.upper():
            raise ValueError
        dt = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"'{text}' is not an RFC 3339 timestamp", field="filter") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return np.datetime64(dt.isoformat(), "ns")


def wkt_literal(text: str) -> Geom:
    try:
        geom = shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise QueryError(f"bad WKT geometry: {str(exc).splitlines()[0][:100]}", field="filter") from None
    return Geom(geom)


def bbox_literal(nums: list) -> Geom:
    if len(nums) not in (4, 6) or not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in nums):
        raise QueryError("BBOX needs 4 or 6 numbers", field="filter")
    half = len(nums) // 2
    return Geom(shapely.box(nums[0], nums[1], nums[half], nums[half + 1]))


def distance_m(value: Any, units: str | None) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise QueryError("S_DWITHIN distance must be a non-negative number", field="filter")
    factor = UNITS.get((units or "m").lower())
    if factor is None:
        raise QueryError(f"unknown distance unit '{units}' (use metres or kilometres)", field="filter")
    return float(value) * factor


# -- CQL2 text ---------------------------------------------------------------------------------
def _parens(depth: int) -> str:
    inner = r"[^()]"
    pattern = r"\([^()]*\)"
    for _ in range(depth - 1):
        pattern = r"\((?:" + inner + "|" + pattern + r")*\)"
    return pattern


GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr OR and_expr -> or_
?and_expr: not_expr | and_expr AND not_expr -> and_
?not_expr: NOT not_expr -> not_ | primary
?primary: predicate | "(" or_expr ")" | BOOLEAN -> const
?predicate: scalar COMP scalar -> compare
    | scalar [NOT] LIKE scalar -> like
    | scalar [NOT] BETWEEN scalar AND scalar -> between
    | scalar [NOT] IN "(" scalar ("," scalar)* ")" -> in_
    | scalar IS [NOT] NULL -> is_null
    | SPATIAL_OP "(" geom_arg "," geom_arg ")" -> spatial
    | DWITHIN "(" geom_arg "," geom_arg "," NUMBER ["," IDENT] ")" -> dwithin
?scalar: prop | STRING -> string | NUMBER -> number | BOOLEAN -> boolean
    | DATE "(" STRING ")" -> date | TIMESTAMP "(" STRING ")" -> timestamp
?geom_arg: prop | WKT -> wkt | BBOX_LIT -> bbox
prop: IDENT | DQUOTED

OR.3: /OR\b/i
AND.3: /AND\b/i
NOT.3: /NOT\b/i
LIKE.3: /LIKE\b/i
BETWEEN.3: /BETWEEN\b/i
IN.3: /IN\b/i
IS.3: /IS\b/i
NULL.3: /NULL\b/i
BOOLEAN.3: /(TRUE|FALSE)\b/i
DATE.3: /DATE(?=\s*\()/i
TIMESTAMP.3: /TIMESTAMP(?=\s*\()/i
SPATIAL_OP.3: /S_(INTERSECTS|DISJOINT|WITHIN|CONTAINS|TOUCHES|CROSSES|OVERLAPS|EQUALS)(?=\s*\()/i
DWITHIN.3: /S_DWITHIN(?=\s*\()/i
WKT.4: /(POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON|GEOMETRYCOLLECTION)\s*(Z\s*)?""" + _parens(5) + r"""/i
BBOX_LIT.4: /BBOX\s*\([^()]*\)/i
COMP: "<>" | "!=" | "<=" | ">=" | "=" | "<" | ">"
STRING: /'(?:[^']|'')*'/
DQUOTED: /"(?:[^"]|"")*"/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
IDENT: /[A-Za-z_][A-Za-z0-9_.:]*/
%import common.WS
%ignore WS
"""


@v_args(inline=True)
class _ToAst(Transformer):
    def prop(self, tok: Token) -> Prop:
        text = str(tok)
        return Prop(text[1:-1].replace('""', '"') if text.startswith('"') else text)

    def string(self, tok):
        return Lit(str(tok)[1:-1].replace("''", "'"))

    def number(self, tok):
        text = str(tok)
        return Lit(float(text) if any(c in text for c in ".eE") else int(text))

    def boolean(self, tok):
        return Lit(str(tok).lower() == "true")

    def const(self, tok):
        return Const(str(tok).lower() == "true")

    def date(self, _kw, tok):
        return Lit(date_literal(str(tok)[1:-1]))

    def timestamp(self, _kw, tok):
        return Lit(timestamp_literal(str(tok)[1:-1]))

    def wkt(self, tok):
        return wkt_literal(str(tok))

    def bbox(self, tok):
        body = str(tok)
        inside = body[body.index("(") + 1:-1]
        try:
            nums = [float(v) for v in inside.split(",")]
        except ValueError:
            raise QueryError("BBOX needs numbers", field="filter") from None
        return bbox_literal(nums)

    def or_(self, a, _op, b):
        return Or((a, b))

    def and_(self, a, _op, b):
        return And((a, b))

    def not_(self, _op, a):
        return Not(a)

    def compare(self, a, op, b):
        return Compare(COMPARISONS[str(op)], a, b)

    def like(self, a, neg, _kw, b):
        return Like(a, b, neg is not None)

    def between(self, a, neg, _kw, lo, _and, hi):
        return Between(a, lo, hi, neg is not None)

    def in_(self, a, neg, _kw, *items):
        return In(a, tuple(items), neg is not None)

    def is_null(self, a, _is, neg, _null):
        return IsNull(a, neg is not None)

    def spatial(self, op, a, b):
        return Spatial(str(op).lower(), a, b)

    def dwithin(self, _op, a, b, dist, units):
        return DWithin(a, b, distance_m(float(dist), str(units) if units is not None else None))


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=True)


def parse_text(text: str) -> Expr:
    if not text or not text.strip():
        raise QueryError("filter is empty", field="filter")
    try:
        return _ToAst().transform(_parser().parse(text))
    except UnexpectedInput as exc:
        raise QueryError(f"CQL2 syntax error at column {exc.column}: near "
                         f"'{text[max(exc.pos_in_stream or 0, 0):][:20]}'", field="filter") from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, QueryError):
            raise exc.orig_exc from None
        raise QueryError("could not read the filter", field="filter") from None
    except LarkError:
        raise QueryError("could not read the filter", field="filter") from None


# -- CQL2 JSON ---------------------------------------------------------------------------------
_GEOJSON_TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
                  "GeometryCollection"}


def _json_arg(node: Any):
    if isinstance(node, bool):
        return Lit(node)
    if isinstance(node, (int, float, str)):
        return Lit(node)
    if isinstance(node, dict):
        if "property" in node:
            if not isinstance(node["property"], str):
                raise QueryError("property must be a string", field="filter")
            return Prop(node["property"])
        if "date" in node:
            return Lit(date_literal(node["date"]))
        if "timestamp" in node:
            return Lit(timestamp_literal(node["timestamp"]))
        if "bbox" in node and isinstance(node["bbox"], list):
            return bbox_literal(node["bbox"])
        if node.get("type") in _GEOJSON_TYPES:
            try:
                return Geom(shapely.from_geojson(json.dumps(node)))
            except (shapely.errors.GEOSException, ValueError, TypeError):
                raise QueryError("bad GeoJSON geometry in filter", field="filter") from None
        if "op" in node:
            return _json_expr(node)
    raise QueryError(f"cannot read filter argument {json.dumps(node)[:60]}", field="filter")


def _args(node: dict, n: int | None = None) -> list:
    args = node.get("args")
    if not isinstance(args, list) or (n is not None and len(args) != n):
        raise QueryError(f"operator '{node.get('op')}' needs {n if n else 'a list of'} arguments",
                         field="filter")
    return args


def _json_expr(node: Any) -> Expr:
    if isinstance(node, bool):
        return Const(node)
    if not isinstance(node, dict) or not isinstance(node.get("op"), str):
        raise QueryError("a CQL2 JSON expression is an object with 'op' and 'args'", field="filter")
    op = node["op"].lower()
    if op in ("and", "or"):
        args = _args(node)
        if len(args) < 2:
            raise QueryError(f"'{op}' needs at least two arguments", field="filter")
        parts = tuple(_json_expr(a) for a in args)
        return And(parts) if op == "and" else Or(parts)
    if op == "not":
        return Not(_json_expr(_args(node, 1)[0]))
    if op in COMPARISONS:
        a, b = _args(node, 2)
        return Compare(COMPARISONS[op], _json_arg(a), _json_arg(b))
    if op == "like":
        a, b = _args(node, 2)
        return Like(_json_arg(a), _json_arg(b))
    if op == "between":
        a, lo, hi = _args(node, 3)
        return Between(_json_arg(a), _json_arg(lo), _json_arg(hi))
    if op == "in":
        a, items = _args(node, 2)
        if not isinstance(items, list) or not items:
            raise QueryError("'in' needs a non-empty list", field="filter")
        return In(_json_arg(a), tuple(_json_arg(i) for i in items))
    if op == "isnull":
        return IsNull(_json_arg(_args(node, 1)[0]))
    if op in SPATIAL_OPS:
        a, b = _args(node, 2)
        return Spatial(op, _json_arg(a), _json_arg(b))
    if op == "s_dwithin":
        args = _args(node)
        if len(args) not in (3, 4):
            raise QueryError("'s_dwithin' needs geometry, geometry, distance[, units]", field="filter")
        return DWithin(_json_arg(args[0]), _json_arg(args[1]),
                       distance_m(args[2], args[3] if len(args) == 4 else None))
    raise QueryError(f"unsupported CQL2 operator '{node['op']}'", field="filter")


def parse_json(payload: str | dict) -> Expr:
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise QueryError("filter is not valid JSON", field="filter") from None
    return _json_expr(payload)


def parse(text: str, lang: str | None = None) -> Expr:
    """Parse a filter in `lang` ('cql2-text', the default, or 'cql2-json')."""
    lang = (lang or "cql2-text").lower()
    if lang == "cql2-text":
        return parse_text(text)
    if lang == "cql2-json":
        return parse_json(text)
    raise QueryError(f"unsupported filter language '{lang}' (use cql2-text or cql2-json)", field="filter-lang")


def evaluate(expr: Expr, layer, rows, filter_crs, project):
    """Boolean mask over `rows` of `layer`; see twin.query.cql2_eval."""
    from twin.query.cql2_eval import evaluate as _evaluate

    return _evaluate(expr, layer, rows, filter_crs, project)
