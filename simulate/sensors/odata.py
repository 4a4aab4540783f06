"""OData query options of SensorThings: parse ($filter and $orderby with lark) and compile to SQL.

`parse_query(params)` turns the request's query options into a `Query`; `compile_expr` turns a
parsed expression into SQL over one entity table with every literal as a bound parameter (no
value is ever interpolated into the SQL text; names come from the `model.ENTITIES` table only).
Geometry functions compile to calls of the `sta_geo*` SQL functions the store registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Callable, Iterator, Mapping

from lark import Lark, Token, Tree
from lark.exceptions import LarkError

from simulate.sensors.errors import InvalidQuery
from simulate.sensors.model import ENTITIES, EntityType, canonical_time

GRAMMAR = r"""
?start: expr
?expr: expr "or" term -> or_
     | term
?term: term "and" factor -> and_
     | factor
?factor: "not" factor -> not_
       | cmp
?cmp: sum COMPOP sum -> compare
    | sum
?sum: sum ADDOP prod -> arith
    | prod
?prod: prod MULOP unary -> arith
     | unary
?unary: "-" atom -> neg
      | atom
?atom: literal
     | call
     | path
     | "(" expr ")"
call: NAME "(" [expr ("," expr)*] ")"
path: NAME ("/" NAME)*
?literal: STRING -> string
        | DATETIME -> datetime
        | NUMBER -> number
        | GEO -> geo
        | "true" -> true
        | "false" -> false
        | "null" -> null
COMPOP: "eq" | "ne" | "gt" | "ge" | "lt" | "le"
ADDOP: "add" | "sub"
MULOP: "mul" | "div" | "mod"
GEO.3: /geography'[^']*'/ | /geometry'[^']*'/
DATETIME.2: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
STRING: /'(?:[^']|'')*'/
NAME: /[A-Za-z_@$][A-Za-z0-9_:.@$]*/
%import common.WS
%ignore WS
"""


@dataclass
class Query:
    filter: Tree | Token | None = None
    select: list[str] | None = None
    expand: list["Expand"] = field(default_factory=list)
    orderby: list[tuple[Tree | Token, bool]] = field(default_factory=list)   # (expression, descending)
    top: int | None = None
    skip: int = 0
    count: bool = False
    raw: dict[str, str] = field(default_factory=dict)     # the options as given (for @iot.nextLink)


@dataclass
class Expand:
    nav: str
    query: Query


class QueryParser:
    """Holds the compiled lark parser (build one per store or app, not per request)."""

    def __init__(self) -> None:
        self._lark = Lark(GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False)

    def expression(self, text: str, option: str) -> Tree | Token:
        try:
            return self._lark.parse(text)
        except LarkError as exc:
            reason = str(exc).splitlines()[0]
            raise InvalidQuery(f"cannot parse {option} '{text}': {reason}", field=option) from None

    def parse(self, params: Mapping[str, str], *, max_top: int = 10_000) -> Query:
        q = Query()
        for key, value in params.items():
            if not key.startswith("$"):
                continue
            q.raw[key] = value
            if key == "$filter":
                q.filter = self.expression(value, "$filter")
            elif key == "$select":
                q.select = [s.strip() for s in value.split(",") if s.strip()]
            elif key == "$expand":
                q.expand = _merge(self._expand(item) for item in _split(value, ","))
            elif key == "$orderby":
                q.orderby = [self._order_item(item) for item in _split(value, ",")]
            elif key in ("$top", "$skip"):
                n = _non_negative(key, value)
                if key == "$top":
                    q.top = min(n, max_top)
                else:
                    q.skip = n
            elif key == "$count":
                if value not in ("true", "false"):
                    raise InvalidQuery("$count must be true or false", field="$count")
                q.count = value == "true"
            elif key != "$resultFormat":
                raise InvalidQuery(f"unknown query option {key}", field=key)
        return q

    def _order_item(self, item: str) -> tuple[Tree | Token, bool]:
        text = item.strip()
        desc = False
        for word, is_desc in ((" desc", True), (" asc", False)):
            if text.endswith(word):
                text, desc = text[: -len(word)].strip(), is_desc
                break
        return self.expression(text, "$orderby"), desc

    def _expand(self, item: str) -> Expand:
        item = item.strip()
        options = ""
        if "(" in item:
            if not item.endswith(")"):
                raise InvalidQuery(f"unbalanced parentheses in $expand '{item}'", field="$expand")
            head, options = item[: item.index("(")], item[item.index("(") + 1: -1]
        else:
            head = item
        parts = [p.strip() for p in head.split("/") if p.strip()]
        if not parts:
            raise InvalidQuery("empty $expand item", field="$expand")
        sub: dict[str, str] = {}
        for opt in _split(options, ";"):
            if "=" not in opt:
                raise InvalidQuery(f"bad nested option '{opt}' in $expand", field="$expand")
            k, v = opt.split("=", 1)
            sub[k.strip()] = v.strip()
        inner = Expand(parts[-1], self.parse(sub))
        for nav in reversed(parts[:-1]):
            inner = Expand(nav, Query(expand=[inner]))
        return inner


def _merge(items: Iterator[Expand]) -> list[Expand]:
    out: dict[str, Expand] = {}
    for e in items:
        if e.nav in out:
            out[e.nav].query.expand = _merge(iter(out[e.nav].query.expand + e.query.expand))
        else:
            out[e.nav] = e
    return list(out.values())


def _non_negative(key: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise InvalidQuery(f"{key} must be a non-negative integer, not '{value}'", field=key) from None
    if n < 0:
        raise InvalidQuery(f"{key} must be a non-negative integer, not '{value}'", field=key)
    return n


def _split(text: str, sep: str) -> list[str]:
    """Split at `sep` outside parentheses and quotes."""
    parts, depth, quoted, cur = [], 0, False, []
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0 or quoted:
        raise InvalidQuery(f"unbalanced parentheses or quotes in '{text}'")
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


# -- compilation ---------------------------------------------------------------------------------

_CMP = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_ARITH = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%"}
_TIME_PARTS = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M", "second": "%S"}
_GEO_PREDICATES = {"geo.intersects": "intersects", "st_intersects": "intersects", "st_within": "within",
                   "st_contains": "contains", "st_disjoint": "disjoint", "st_equals": "equals",
                   "st_touches": "touches", "st_overlaps": "overlaps", "st_crosses": "crosses"}


def _fn_table() -> dict[str, tuple[int, int, Callable[[list[str]], str]]]:
    """name -> (min args, max args, SQL builder)."""
    t: dict[str, tuple[int, int, Callable[[list[str]], str]]] = {
        "substringof": (2, 2, lambda a: f"(instr({a[1]}, {a[0]}) > 0)"),
        "contains": (2, 2, lambda a: f"(instr({a[0]}, {a[1]}) > 0)"),
        "startswith": (2, 2, lambda a: f"(sta_startswith({a[0]}, {a[1]}) = 1)"),
        "endswith": (2, 2, lambda a: f"(sta_endswith({a[0]}, {a[1]}) = 1)"),
        "length": (1, 1, lambda a: f"length({a[0]})"),
        "indexof": (2, 2, lambda a: f"(instr({a[0]}, {a[1]}) - 1)"),
        "substring": (2, 3, lambda a: f"substr({a[0]}, {a[1]} + 1{', ' + a[2] if len(a) > 2 else ''})"),
        "tolower": (1, 1, lambda a: f"lower({a[0]})"),
        "toupper": (1, 1, lambda a: f"upper({a[0]})"),
        "trim": (1, 1, lambda a: f"trim({a[0]})"),
        "concat": (2, 2, lambda a: f"({a[0]} || {a[1]})"),
        "round": (1, 1, lambda a: f"sta_round({a[0]})"),
        "floor": (1, 1, lambda a: f"sta_floor({a[0]})"),
        "ceiling": (1, 1, lambda a: f"sta_ceiling({a[0]})"),
        "fractionalseconds": (1, 1, lambda a: f"sta_fraction(strftime('%f', {a[0]}))"),
        "date": (1, 1, lambda a: f"date({a[0]})"),
        "time": (1, 1, lambda a: f"time({a[0]})"),
        "totaloffsetminutes": (1, 1, lambda a: "0"),
        "geo.distance": (2, 2, lambda a: f"sta_geo_distance({a[0]}, {a[1]})"),
        "geo.length": (1, 1, lambda a: f"sta_geo_length({a[0]})"),
        "st_relate": (3, 3, lambda a: f"(sta_geo_relate({a[0]}, {a[1]}, {a[2]}) = 1)"),
    }
    for name, fmt in _TIME_PARTS.items():
        t[name] = (1, 1, lambda a, fmt=fmt: f"CAST(strftime('{fmt}', {a[0]}) AS INTEGER)")
    for name, op in _GEO_PREDICATES.items():
        t[name] = (2, 2, lambda a, op=op: f"(sta_geo('{op}', {a[0]}, {a[1]}) = 1)")
    return t


FUNCTIONS = _fn_table()


class Compiler:
    """Compiles expressions over one entity type; collects bound parameters in order."""

    def __init__(self, params: list[object] | None = None) -> None:
        self.params: list[object] = params if params is not None else []
        self._aliases = count(1)

    def expr(self, node: Tree | Token, entity: EntityType, alias: str) -> str:
        if isinstance(node, Token):
            raise InvalidQuery(f"unexpected '{node}'")
        kind = node.data
        if kind in ("or_", "and_"):
            op = "OR" if kind == "or_" else "AND"
            return f"({self.expr(node.children[0], entity, alias)} {op} {self.expr(node.children[1], entity, alias)})"
        if kind == "not_":
            return f"(NOT {self.expr(node.children[0], entity, alias)})"
        if kind == "compare":
            left, op, right = node.children
            for a, b in ((left, right), (right, left)):
                if isinstance(b, Tree) and b.data == "null" and op in ("eq", "ne"):
                    return f"({self.expr(a, entity, alias)} IS {'NOT ' if op == 'ne' else ''}NULL)"
            return f"({self.expr(left, entity, alias)} {_CMP[str(op)]} {self.expr(right, entity, alias)})"
        if kind == "arith":
            left, op, right = node.children
            return f"({self.expr(left, entity, alias)} {_ARITH[str(op)]} {self.expr(right, entity, alias)})"
        if kind == "neg":
            return f"(- {self.expr(node.children[0], entity, alias)})"
        if kind == "path":
            return self.path([str(t) for t in node.children], entity, alias)
        if kind == "call":
            return self._call(node, entity, alias)
        return self._literal(node)

    def _literal(self, node: Tree) -> str:
        kind = node.data
        if kind == "null":
            return "NULL"
        if kind in ("true", "false"):
            self.params.append(1 if kind == "true" else 0)
            return "?"
        text = str(node.children[0])
        if kind == "string":
            self.params.append(text[1:-1].replace("''", "'"))
        elif kind == "number":
            self.params.append(float(text) if any(c in text for c in ".eE") else int(text))
        elif kind == "datetime":
            self.params.append(canonical_time(text, "$filter"))
        elif kind == "geo":
            self.params.append(text[text.index("'") + 1: -1])
        else:
            raise InvalidQuery(f"unsupported literal {kind}")
        return "?"

    def _call(self, node: Tree, entity: EntityType, alias: str) -> str:
        name = str(node.children[0])
        args = [c for c in node.children[1:] if c is not None]
        if name == "now":
            from simulate.sensors.model import now_text

            self.params.append(now_text())
            return "?"
        if name not in FUNCTIONS:
            raise InvalidQuery(f"unknown function {name}()", field="$filter")
        lo, hi, build = FUNCTIONS[name]
        if not lo <= len(args) <= hi:
            raise InvalidQuery(f"{name}() takes {lo if lo == hi else f'{lo} to {hi}'} arguments, not {len(args)}",
                               field="$filter")
        return build([self.expr(a, entity, alias) for a in args])

    def path(self, segs: list[str], entity: EntityType, alias: str) -> str:
        seg = segs[0]
        if seg in ("id", "@iot.id"):
            if len(segs) > 1:
                raise InvalidQuery(f"'{'/'.join(segs)}': id has no sub-properties")
            return f"{alias}.id"
        nav = entity.nav(seg)
        if nav is not None:
            if nav.many:
                raise InvalidQuery(f"'{seg}' is a collection; only to-one navigation may appear in a path")
            if len(segs) == 1:
                return f"{alias}.{nav.fk}"
            target = ENTITIES[nav.target]
            inner_alias = f"n{next(self._aliases)}"
            inner = self.path(segs[1:], target, inner_alias)
            return f"(SELECT {inner} FROM {target.table} AS {inner_alias} WHERE {inner_alias}.id = {alias}.{nav.fk})"
        prop = entity.prop(seg)
        if prop is None:
            raise InvalidQuery(f"{entity.singular} has no property '{seg}'")
        if prop.kind == "json":
            if len(segs) == 1:
                return f"{alias}.{prop.column}"
            self.params.append("$" + "".join(f'."{s}"' for s in segs[1:]))
            return f"json_extract({alias}.{prop.column}, ?)"
        if len(segs) > 1:
            raise InvalidQuery(f"{entity.singular}/{seg} has no sub-properties")
        if prop.kind == "interval":
            return f"{alias}.{prop.column}_start"
        if prop.kind == "derived":
            raise InvalidQuery(f"{entity.singular}/{seg} is computed and cannot be used in a query")
        return f"{alias}.{prop.column}"


def compile_order(orderby: list[tuple[Tree | Token, bool]], entity: EntityType, alias: str,
                  compiler: Compiler) -> str:
    parts = [f"{compiler.expr(e, entity, alias)} {'DESC' if desc else 'ASC'}" for e, desc in orderby]
    return ", ".join(parts + [f"{alias}.id ASC"])
