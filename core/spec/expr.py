"""The blueprint expression language: parsing text into a small typed IR.

Expressions use Python's syntax (parsed with :mod:`ast`) with a fixed meaning:

* ``rider_id``                      a parameter of the operation
* ``riders[rider_id].status``       a column of the row with that primary key (``not_found`` if absent)
* ``count(rentals, rider_id=rider_id, status='active')``  rows matching equality filters
* ``exists(...)`` / ``sum(rentals.amount, rider_id=rider_id)``
* ``today`` / ``now``               the environment clock (a date / an ISO timestamp)
* ``inserted.rental_id``            a column of the row inserted by an earlier effect
* ``null`` / ``true`` / ``false``, numbers, strings, ``+ - * /``, comparisons, ``and or not``, ``in [..]``
* ``add_days(d, n)``, ``days_between(a, b)``, ``round(x, n)``, ``min``, ``max``, ``abs``, ``lower(s)``

Effects: ``insert T {col: expr, ...}``, ``update T[key] set col = expr, col -= expr``,
``update T(col=expr, ...) set ...`` (every matching row), ``delete T[key]``.
Returns: ``inserted``, ``T[key]``, ``T(col=expr, ...)`` (a list), ``{field: expr, ...}``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from core.data.models import DomainSchema


class ExprError(ValueError):
    """An expression that does not parse or does not fit the schema."""


# --------------------------------------------------------------------------- IR


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Param:
    name: str


@dataclass(frozen=True)
class Clock:
    name: str  # "today" | "now"


@dataclass(frozen=True)
class Lookup:
    table: str
    key: Expr


@dataclass(frozen=True)
class Field:
    row: Lookup
    column: str


@dataclass(frozen=True)
class InsertedField:
    column: str


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * /
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class InList:
    item: Expr
    options: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    value: Expr


@dataclass(frozen=True)
class Neg:
    value: Expr


@dataclass(frozen=True)
class Agg:
    fn: str  # count | exists | sum
    table: str
    column: str | None
    filters: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[Expr, ...]


Expr = Lit | Param | Clock | Field | InsertedField | BinOp | Compare | InList | BoolOp | Not | Neg | Agg | Call

FUNCTIONS = {"add_days": 2, "days_between": 2, "round": (1, 2), "min": 2, "max": 2, "abs": 1, "lower": 1}
CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
NAMED_CONSTANTS = {"null": None, "None": None, "true": True, "True": True, "false": False, "False": False}


# ------------------------------------------------------------------ effects/returns


@dataclass(frozen=True)
class Insert:
    table: str
    values: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class Update:
    table: str
    key: Expr | None  # one row by primary key ...
    filters: tuple[tuple[str, Expr], ...] | None  # ... or every matching row
    sets: tuple[tuple[str, str, Expr], ...]  # (column, "=" | "+=" | "-=", value)


@dataclass(frozen=True)
class Delete:
    table: str
    key: Expr


Effect = Insert | Update | Delete


@dataclass(frozen=True)
class RetInserted:
    pass


@dataclass(frozen=True)
class RetRow:
    row: Lookup


@dataclass(frozen=True)
class RetOne:
    """The single row matching the filters (a lookup by a unique column)."""

    table: str
    filters: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class RetList:
    table: str
    filters: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class RetObject:
    fields: tuple[tuple[str, Expr], ...]


Returns = RetInserted | RetRow | RetOne | RetList | RetObject


@dataclass
class Scope:
    """What names an expression may use: the schema and the operation's parameters."""

    schema: DomainSchema
    params: dict[str, Any]  # name -> ParamSpec
    inserted: str | None = None  # table of the row inserted so far, if any
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ parsing


def _parse(text: str, mode: str = "eval") -> ast.AST:
    try:
        return ast.parse(text.strip(), mode=mode)
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        raise ExprError(f"cannot parse {text.strip()!r}{col}: {e.msg}") from None


def parse_expr(text: str, scope: Scope) -> Expr:
    if not isinstance(text, str):
        if isinstance(text, bool | int | float) or text is None:
            return Lit(text)
        raise ExprError(f"expected an expression, got {type(text).__name__}")
    return _convert(_parse(text).body, scope)


def _table(name: str, scope: Scope) -> str:
    if not scope.schema.has_table(name):
        known = ", ".join(t.name for t in scope.schema.tables)
        raise ExprError(f"unknown table {name!r} (tables: {known})")
    return name


def _column(table: str, column: str, scope: Scope) -> str:
    t = scope.schema.table(table)
    if not t.has_column(column):
        known = ", ".join(c.name for c in t.columns)
        raise ExprError(f"table {table!r} has no column {column!r} (columns: {known})")
    return column


def _lookup(node: ast.Subscript, scope: Scope) -> Lookup:
    if not isinstance(node.value, ast.Name):
        raise ExprError("a row lookup is written TABLE[key], e.g. riders[rider_id]")
    table = _table(node.value.id, scope)
    return Lookup(table, _convert(node.slice, scope))


def _filters(table: str, keywords: list[ast.keyword], scope: Scope) -> tuple[tuple[str, Expr], ...]:
    out = []
    for kw in keywords:
        if kw.arg is None:
            raise ExprError("filters are written column=value")
        out.append((_column(table, kw.arg, scope), _convert(kw.value, scope)))
    return tuple(out)


def _convert(node: ast.AST, scope: Scope) -> Expr:
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise ExprError(f"unsupported literal {node.value!r}")
        return Lit(node.value)
    if isinstance(node, ast.Name):
        if node.id in NAMED_CONSTANTS:
            return Lit(NAMED_CONSTANTS[node.id])
        if node.id in scope.params:
            return Param(node.id)
        if node.id in ("today", "now"):
            return Clock(node.id)
        if node.id == "inserted":
            raise ExprError("use inserted.COLUMN for a column of the inserted row")
        raise ExprError(f"unknown name {node.id!r} (parameters: {', '.join(scope.params) or 'none'})")
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "inserted":
            if scope.inserted is None:
                raise ExprError("inserted.* is only available after an insert effect")
            return InsertedField(_column(scope.inserted, node.attr, scope))
        if isinstance(node.value, ast.Subscript):
            row = _lookup(node.value, scope)
            return Field(row, _column(row.table, node.attr, scope))
        raise ExprError("a column is read as TABLE[key].column, e.g. riders[rider_id].status")
    if isinstance(node, ast.BinOp):
        op = ARITH.get(type(node.op))
        if op is None:
            raise ExprError(f"unsupported operator {type(node.op).__name__}")
        return BinOp(op, _convert(node.left, scope), _convert(node.right, scope))
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return Not(_convert(node.operand, scope))
        if isinstance(node.op, ast.USub):
            inner = _convert(node.operand, scope)
            if isinstance(inner, Lit) and isinstance(inner.value, int | float):
                return Lit(-inner.value)
            return Neg(inner)
        raise ExprError(f"unsupported operator {type(node.op).__name__}")
    if isinstance(node, ast.BoolOp):
        return BoolOp("and" if isinstance(node.op, ast.And) else "or",
                      tuple(_convert(v, scope) for v in node.values))
    if isinstance(node, ast.Compare):
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple):
                    raise ExprError("'in' takes a literal list, e.g. status in ['open', 'held']")
                parts.append(InList(_convert(left, scope), tuple(_convert(e, scope) for e in right.elts),
                                    isinstance(op, ast.NotIn)))
            elif type(op) in CMP:
                parts.append(Compare(CMP[type(op)], _convert(left, scope), _convert(right, scope)))
            else:
                raise ExprError(f"unsupported comparison {type(op).__name__}")
            left = right
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise ExprError("only the built-in functions can be called")
        fn = node.func.id
        if fn in ("count", "exists"):
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                raise ExprError(f"{fn} is written {fn}(TABLE, column=value, ...)")
            table = _table(node.args[0].id, scope)
            return Agg(fn, table, None, _filters(table, node.keywords, scope))
        if fn == "sum":
            a = node.args[0] if len(node.args) == 1 else None
            if not (isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)):
                raise ExprError("sum is written sum(TABLE.column, column=value, ...)")
            table = _table(a.value.id, scope)
            return Agg("sum", table, _column(table, a.attr, scope), _filters(table, node.keywords, scope))
        if fn in FUNCTIONS:
            arity = FUNCTIONS[fn]
            ok = len(node.args) in arity if isinstance(arity, tuple) else len(node.args) == arity
            if not ok or node.keywords:
                raise ExprError(f"{fn} takes {arity} positional argument(s)")
            return Call(fn, tuple(_convert(a, scope) for a in node.args))
        raise ExprError(f"unknown function {fn!r} (known: count, exists, sum, {', '.join(FUNCTIONS)})")
    if isinstance(node, ast.Subscript):
        raise ExprError("a row lookup needs a column: TABLE[key].column")
    raise ExprError(f"unsupported expression {ast.dump(node)[:60]}")


_INSERT = re.compile(r"^insert\s+(\w+)\s*(\{.*\})\s*$", re.S)
_UPDATE = re.compile(r"^update\s+(\w+)\s*(\[.*?\]|\(.*?\))\s+set\s+(.+)$", re.S)
_DELETE = re.compile(r"^delete\s+(\w+)\s*\[(.*)\]\s*$", re.S)
_SET = re.compile(r"^\s*(\w+)\s*(\+=|-=|=)(?!=)\s*(.+?)\s*$", re.S)


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes."""
    out, depth, buf, quote = [], 0, [], None
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if "".join(buf).strip():
        out.append("".join(buf))
    return out


def _dict_items(text: str, scope: Scope, what: str) -> tuple[tuple[str, Expr], ...]:
    node = _parse(text).body
    if not isinstance(node, ast.Dict):
        raise ExprError(f"{what} is written {{column: value, ...}}")
    items = []
    for k, v in zip(node.keys, node.values, strict=True):
        if isinstance(k, ast.Name):
            key = k.id
        elif isinstance(k, ast.Constant) and isinstance(k.value, str):
            key = k.value
        else:
            raise ExprError(f"{what}: keys are column names")
        items.append((key, _convert(v, scope)))
    return tuple(items)


def parse_effect(text: str, scope: Scope) -> Effect:
    if not isinstance(text, str):
        raise ExprError("an effect is a string such as: update riders[rider_id] set status = 'active'")
    text = text.strip()
    if m := _INSERT.match(text):
        table = _table(m.group(1), scope)
        values = _dict_items(m.group(2), scope, "insert")
        for col, _ in values:
            _column(table, col, scope)
        return Insert(table, values)
    if m := _UPDATE.match(text):
        table = _table(m.group(1), scope)
        target = m.group(2)
        key = filters = None
        if target.startswith("["):
            key = _convert(_parse(target[1:-1]).body, scope)
        else:
            call = _parse(f"f{target}").body
            if call.args:
                raise ExprError("update TABLE(column=value, ...) takes filters only")
            filters = _filters(table, call.keywords, scope)
        sets = []
        for part in _split_top(m.group(3)):
            sm = _SET.match(part)
            if not sm:
                raise ExprError(f"cannot read assignment {part.strip()!r}; write column = value")
            col = _column(table, sm.group(1), scope)
            if any(c == col for c, _, _ in sets):
                raise ExprError(f"column {col!r} is set twice")
            sets.append((col, sm.group(2), parse_expr(sm.group(3), scope)))
        return Update(table, key, filters, tuple(sets))
    if m := _DELETE.match(text):
        table = _table(m.group(1), scope)
        return Delete(table, _convert(_parse(m.group(2)).body, scope))
    raise ExprError(
        "an effect starts with insert, update or delete: 'insert T {col: value}', "
        "'update T[key] set col = value', 'update T(col=value) set ...', 'delete T[key]'"
    )


def parse_returns(text: Any, scope: Scope) -> Returns:
    if isinstance(text, dict):
        return RetObject(tuple((str(k), parse_expr(v, scope)) for k, v in text.items()))
    if not isinstance(text, str):
        raise ExprError("returns is 'inserted', TABLE[key], TABLE(filters) or a mapping of fields")
    text = text.strip()
    if text == "inserted":
        if scope.inserted is None:
            raise ExprError("returns inserted, but no effect inserts a row")
        return RetInserted()
    node = _parse(text).body
    if isinstance(node, ast.Subscript):
        return RetRow(_lookup(node, scope))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
        table = _table(node.func.id, scope)
        return RetList(table, _filters(table, node.keywords, scope))
    if isinstance(node, ast.Dict):
        return RetObject(_dict_items(text, scope, "returns"))
    raise ExprError("returns is 'inserted', TABLE[key], TABLE(column=value, ...) or {field: expr, ...}")


# ------------------------------------------------------------------ walking


def children(e: Any) -> list[Any]:
    """Direct sub-expressions of an IR node (expressions, lookups, effects, returns)."""
    if isinstance(e, Lookup):
        return [e.key]
    if isinstance(e, Field):
        return [e.row]
    if isinstance(e, BinOp | Compare):
        return [e.left, e.right]
    if isinstance(e, InList):
        return [e.item, *e.options]
    if isinstance(e, BoolOp):
        return list(e.values)
    if isinstance(e, Not | Neg):
        return [e.value]
    if isinstance(e, Agg):
        return [v for _, v in e.filters]
    if isinstance(e, Call):
        return list(e.args)
    if isinstance(e, Insert):
        return [v for _, v in e.values]
    if isinstance(e, Update):
        out = [v for _, _, v in e.sets]
        if e.key is not None:
            out.insert(0, e.key)
        if e.filters:
            out[:0] = [v for _, v in e.filters]
        return out
    if isinstance(e, Delete):
        return [e.key]
    if isinstance(e, RetRow):
        return [e.row]
    if isinstance(e, RetOne | RetList):
        return [v for _, v in e.filters]
    if isinstance(e, RetObject):
        return [v for _, v in e.fields]
    return []


def walk(e: Any):
    yield e
    for c in children(e):
        yield from walk(c)


def reads_clock(e: Any) -> bool:
    """Does the expression compare with ``today`` or ``now``?"""
    return any(isinstance(x, Clock) for x in walk(e))


def clock_operands(e: Any) -> list[Clock | Param]:
    """In a requirement on the clock: the clock and the arguments compared with it (not the
    arguments that only pick a row), each once, in order. Empty when the clock is not read."""
    if not reads_clock(e):
        return []
    out: list[Clock | Param] = []

    def visit(x: Any) -> None:
        if isinstance(x, Clock | Param):
            if x not in out:
                out.append(x)
        elif not isinstance(x, Field | Agg | Lookup):
            for c in children(x):
                visit(c)

    visit(e)
    return out


def lookups(e: Any) -> list[Lookup]:
    """Row lookups inside e, inner ones first, each once, in order of appearance."""
    seen: list[Lookup] = []

    def visit(x: Any) -> None:
        for c in children(x):
            visit(c)
        if isinstance(x, Lookup) and x not in seen:
            seen.append(x)

    visit(e)
    return seen


def render(e: Any) -> str:
    """Expression IR back to blueprint text (for messages and the UI)."""
    if isinstance(e, Lit):
        return "null" if e.value is None else repr(e.value)
    if isinstance(e, Param):
        return e.name
    if isinstance(e, Clock):
        return e.name
    if isinstance(e, Lookup):
        return f"{e.table}[{render(e.key)}]"
    if isinstance(e, Field):
        return f"{render(e.row)}.{e.column}"
    if isinstance(e, InsertedField):
        return f"inserted.{e.column}"
    if isinstance(e, BinOp | Compare):
        return f"{render(e.left)} {e.op} {render(e.right)}"
    if isinstance(e, InList):
        return f"{render(e.item)} {'not in' if e.negated else 'in'} [{', '.join(render(o) for o in e.options)}]"
    if isinstance(e, BoolOp):
        return f" {e.op} ".join(f"({render(v)})" for v in e.values)
    if isinstance(e, Not):
        return f"not ({render(e.value)})"
    if isinstance(e, Neg):
        return f"-({render(e.value)})"
    if isinstance(e, Agg):
        f = ", ".join(f"{c}={render(v)}" for c, v in e.filters)
        head = f"{e.table}.{e.column}" if e.column else e.table
        return f"{e.fn}({head}{', ' + f if f else ''})"
    if isinstance(e, Call):
        return f"{e.fn}({', '.join(render(a) for a in e.args)})"
    return repr(e)


def _render_filters(table: str, filters: tuple[tuple[str, Any], ...]) -> str:
    return f"{table}({', '.join(f'{c}={render(v)}' for c, v in filters)})"


def render_returns(r: Any) -> str:
    if isinstance(r, RetInserted):
        return "inserted"
    if isinstance(r, RetRow):
        return render(r.row)
    if isinstance(r, RetOne):
        return "one " + _render_filters(r.table, r.filters)
    if isinstance(r, RetList):
        return _render_filters(r.table, r.filters)
    if isinstance(r, RetObject):
        return "{" + ", ".join(f"{k}: {render(v)}" for k, v in r.fields) + "}"
    return repr(r)


def render_effect(e: Any) -> str:
    if isinstance(e, Insert):
        return f"insert {e.table} {{{', '.join(f'{c}: {render(v)}' for c, v in e.values)}}}"
    if isinstance(e, Update):
        target = f"[{render(e.key)}]" if e.key is not None else _render_filters("", e.filters or ())
        sets = ", ".join(f"{c} {op} {render(v)}" for c, op, v in e.sets)
        return f"update {e.table}{target} set {sets}"
    if isinstance(e, Delete):
        return f"delete {e.table}[{render(e.key)}]"
    return repr(e)
