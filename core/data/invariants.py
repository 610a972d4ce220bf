"""Consistent states: the checks every row of a table keeps, stated in the blueprint or derived.

A state is *consistent* when every invariant holds on every row. Three kinds of invariant:

* **stated**: a table's ``invariants:`` in the blueprint, parsed with the row's columns as names
  (``status != 'active' or end_station_id == null``), evaluated per row with the meaning the
  specification interpreter gives it (:class:`core.spec.interp.Evaluator` with the row as its
  arguments; compiled once to a Python function, :func:`compile_check`, held to the same answers);
* **derived, references**: every non-null ``ref`` column names an existing row of its table
  (the database does not enforce references; a delete can leave one dangling);
* **derived, a status and the columns it implies**: for an ``enum`` column E and one of its
  values v, when at least one effect writes E = 'v' (an insert with the literal or E's default,
  an ``update ... set E = 'v'``) and *every* such effect empties a nullable column C (resp. gives
  it a value that cannot be null), and no effect writes C without also writing E, and no effect
  writes E with anything but a literal: ``E != 'v' or C == null`` (resp. ``C != null``). Such an
  invariant is kept by every operation by construction. See docs/blueprints.md, "Invariants".

An evaluation error (a lookup of a missing row, a comparison with null) is a violation whose
``reason`` says what went wrong; :meth:`Invariants.violations` never raises.

Usage::

    inv = Invariants.for_domain(domain)         # or Invariants(blueprint), Invariants(schema)
    inv.violations(db, ctx)                     # [] when the state is consistent
    db.mark(); ...; inv.violations(db, ctx, changed_only=True)   # only what the writes can have broken
"""

from __future__ import annotations

import operator
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from core.data.db import DomainDB
from core.data.models import Domain, DomainSchema, Table, ToolSpec
from core.runtime.context import NotFound, ToolContext
from core.spec import expr as X
from core.spec.blueprint import invariant_scope

Kind = Literal["stated", "implies", "ref"]


@dataclass(frozen=True)
class Violation:
    """One row that breaks one invariant."""

    table: str
    key: Any
    check: str  # the invariant's text; derived ones start with "derived: "
    message: str = ""
    reason: str = ""  # why it could not be evaluated (an error), or what a derived check found
    derived: bool = False

    def __str__(self) -> str:
        s = f"{self.table} {self.key}: {self.check}"
        if self.message:
            s += f" ({self.message})"
        if self.reason:
            s += f" [{self.reason}]"
        return s


@dataclass
class Invariant:
    table: str
    check: str
    message: str
    kind: Kind
    expr: X.Expr  # the check as IR, over the row's columns (Param = a column of the row)
    index: int | None = None  # stated: position in tables.TABLE.invariants
    reads: frozenset[str] = frozenset()  # tables read through a lookup or an aggregate
    column: str = ""  # implies: the enum column; ref: the ref column
    value: Any = None  # implies: the enum value
    other: str = ""  # implies: the implied column; ref: the referenced table
    null: bool = True  # implies: the implied column is empty (True) or set (False)
    deps: list[tuple[str, str, str]] | None = None  # stated: (table read, own column, its column) per read; None: any row
    _fn: Any = field(default=None, repr=False, compare=False)  # the check compiled (compile_check), on first use

    @property
    def derived(self) -> bool:
        return self.kind != "stated"

    @property
    def local(self) -> bool:
        """Reads the row only: a change elsewhere cannot break it."""
        return self.kind == "implies" or (self.kind == "stated" and not self.reads)

    @property
    def where(self) -> str:
        """Where it comes from: ``tables.T.invariants[i]``, or ``derived`` and the table."""
        return f"tables.{self.table}.invariants[{self.index}]" if self.index is not None else \
            f"derived invariant of {self.table}"

    def holds(self, row: dict[str, Any], db: DomainDB, ctx: ToolContext) -> tuple[bool, str]:
        """(holds, reason) for one row; never raises."""
        try:
            if self.kind == "implies":
                return (row[self.column] != self.value or (row[self.other] is None) == self.null), ""
            if self.kind == "ref":
                v = row[self.column]
                if v is None or db.get(self.other, v) is not None:
                    return True, ""
                return False, f"no {self.other} row {v!r}"
            fn = self._fn
            if fn is None:
                fn = self._fn = compile_check(self.expr)
            return bool(fn(row, db, ctx)), ""
        except Exception as e:  # noqa: BLE001 - an invariant that cannot be evaluated does not hold
            return False, f"{type(e).__name__}: {getattr(e, 'message', None) or e}"

    def violation(self, key: Any, reason: str = "") -> Violation:
        return Violation(self.table, key, self.check, self.message, reason, self.derived)



# ------------------------------------------------------------------ compiled checks

_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
Check = Callable[[dict, Any, ToolContext], Any]


def compile_check(e: X.Expr) -> Check:
    """``e`` as a Python function of (row, db, ctx) that computes what
    ``Evaluator(db, ctx, args=row).eval(e)`` computes, raising the same errors, without walking
    the tree for every row (tests/test_invariants.py holds the two to the same answers)."""
    if isinstance(e, X.Lit):
        v = e.value
        return lambda r, db, ctx: v
    if isinstance(e, X.Param):
        name = e.name
        return lambda r, db, ctx: r.get(name)
    if isinstance(e, X.Clock):
        return (lambda r, db, ctx: ctx.today) if e.name == "today" else (lambda r, db, ctx: ctx.now)
    if isinstance(e, X.Field):
        table, column, key = e.row.table, e.column, compile_check(e.row.key)

        def field(r: dict, db: Any, ctx: ToolContext) -> Any:
            k = key(r, db, ctx)
            row = db.get(table, k)
            if row is None:
                raise NotFound(table, k)
            return row[column]
        return field
    if isinstance(e, X.InsertedField):
        return lambda r, db, ctx: None
    if isinstance(e, X.BinOp | X.Compare):
        fn = (_ARITH if isinstance(e, X.BinOp) else _CMP)[e.op]
        a, b = compile_check(e.left), compile_check(e.right)
        return lambda r, db, ctx: fn(a(r, db, ctx), b(r, db, ctx))
    if isinstance(e, X.InList):
        item, opts, neg = compile_check(e.item), [compile_check(o) for o in e.options], e.negated
        return lambda r, db, ctx: (item(r, db, ctx) in [o(r, db, ctx) for o in opts]) != neg
    if isinstance(e, X.BoolOp):
        vals = [compile_check(v) for v in e.values]
        if e.op == "and":
            return lambda r, db, ctx: all(v(r, db, ctx) for v in vals)
        return lambda r, db, ctx: any(v(r, db, ctx) for v in vals)
    if isinstance(e, X.Not):
        inner = compile_check(e.value)
        return lambda r, db, ctx: not inner(r, db, ctx)
    if isinstance(e, X.Neg):
        inner = compile_check(e.value)
        return lambda r, db, ctx: -inner(r, db, ctx)
    if isinstance(e, X.Agg):
        table, column, fn_name = e.table, e.column, e.fn
        filters = [(c, compile_check(v)) for c, v in e.filters]

        def agg(r: dict, db: Any, ctx: ToolContext) -> Any:
            f = {c: v(r, db, ctx) for c, v in filters}
            if fn_name == "sum":
                return db.sum(table, column, **f)
            n = db.count(table, **f)
            return n > 0 if fn_name == "exists" else n
        return agg
    if isinstance(e, X.Call):
        args = [compile_check(a) for a in e.args]
        name = e.fn
        if name == "add_days":
            return lambda r, db, ctx: ctx.add_days(*[a(r, db, ctx) for a in args])
        if name == "days_between":
            return lambda r, db, ctx: ctx.days_between(*[a(r, db, ctx) for a in args])
        if name == "lower":
            return lambda r, db, ctx: str(args[0](r, db, ctx)).lower()
        fn = {"round": round, "min": min, "max": max, "abs": abs}[name]
        return lambda r, db, ctx: fn(*[a(r, db, ctx) for a in args])
    raise TypeError(f"cannot evaluate {e!r}")


# ------------------------------------------------------------------ derivation

_Null = Literal["null", "nonnull", "unknown"]


def nullness(e: X.Expr, params: dict[str, Any], schema: DomainSchema, inserted: str | None = None) -> _Null:
    """Whether a value an effect writes is null, never null, or either (when the call succeeds)."""
    if isinstance(e, X.Lit):
        return "null" if e.value is None else "nonnull"
    if isinstance(e, X.Clock | X.Agg | X.Compare | X.InList | X.Not | X.BinOp | X.Neg):
        return "nonnull"  # arithmetic on null fails the call; comparisons and counts are never null
    if isinstance(e, X.Call):
        return "nonnull" if e.fn in ("add_days", "days_between", "round", "abs", "lower", "min", "max") else "unknown"
    if isinstance(e, X.Param):
        p = params.get(e.name)
        return "nonnull" if p is not None and not p.optional else "unknown"
    if isinstance(e, X.Field):
        col = schema.table(e.row.table).column(e.column)
        return "unknown" if col.nullable else "nonnull"
    if isinstance(e, X.InsertedField) and inserted:
        col = schema.table(inserted).column(e.column)
        return "unknown" if col.nullable else "nonnull"
    return "unknown"


@dataclass
class _Writer:
    """One effect that writes an enum column: the value, and what it does to each nullable column."""

    value: Any  # the literal written, or _WILD
    columns: dict[str, _Null] = field(default_factory=dict)


_WILD = object()


def _op_effects(schema: DomainSchema, item: Any) -> tuple[list[tuple[X.Effect, str | None]], dict] | None:
    """An operation's effects, each with the table inserted into before it; None if unreadable."""
    if isinstance(item, ToolSpec):
        params = {p.name: p for p in item.params}
        scope = X.Scope(schema, params)
        out = []
        for text in item.effects:
            try:
                eff = X.parse_effect(text, scope)
            except X.ExprError:
                return None
            out.append((eff, scope.inserted))
            if isinstance(eff, X.Insert):
                scope.inserted = eff.table
        return out, params
    params = getattr(item, "params", {})
    out, inserted = [], None
    for eff in getattr(item, "effects", []):
        out.append((eff, inserted))
        if isinstance(eff, X.Insert):
            inserted = eff.table
    return out, params


def derive_implications(schema: DomainSchema, operations: Iterable[Any]) -> list[Invariant]:
    """The "a status implies a column is empty/set" invariants (see the module docstring)."""
    writers: dict[tuple[str, str], list[_Writer]] = {}  # (table, enum column) -> writers
    free: set[tuple[str, str, str]] = set()  # (table, enum column, column) written without the enum column
    for item in operations:
        got = _op_effects(schema, item)
        if got is None:
            return []  # an effect we cannot read could write anything: derive nothing
        effects, params = got
        for eff, inserted in effects:
            if isinstance(eff, X.Delete):
                continue
            t = schema.table(eff.table)
            nullable = [c for c in t.columns if c.nullable and c.name != t.primary_key]
            for ecol in (c for c in t.columns if c.type == "enum"):
                if isinstance(eff, X.Insert):
                    given = dict(eff.values)
                    g = given.get(ecol.name, X.Lit(ecol.default))
                    w = _Writer(g.value if isinstance(g, X.Lit) else _WILD)
                    for c in nullable:
                        if c.name in given:
                            w.columns[c.name] = nullness(given[c.name], params, schema, inserted)
                        else:
                            w.columns[c.name] = "null" if c.default is None else "nonnull"
                    if w.value is not None:
                        writers.setdefault((t.name, ecol.name), []).append(w)
                    continue
                sets = {c: (how, v) for c, how, v in eff.sets}
                if ecol.name not in sets:
                    for c in sets:
                        free.add((t.name, ecol.name, c))
                    continue
                how, g = sets[ecol.name]
                w = _Writer(g.value if how == "=" and isinstance(g, X.Lit) else _WILD)
                for c in nullable:
                    if c.name not in sets:
                        w.columns[c.name] = "unknown"
                    else:
                        chow, cv = sets[c.name]
                        w.columns[c.name] = "nonnull" if chow != "=" else nullness(cv, params, schema, inserted)
                if w.value is not None:
                    writers.setdefault((t.name, ecol.name), []).append(w)
    out: list[Invariant] = []
    for t in schema.tables:
        for ecol in (c for c in t.columns if c.type == "enum"):
            ws = writers.get((t.name, ecol.name), [])
            if any(w.value is _WILD for w in ws):
                continue
            for v in ecol.values:
                mine = [w for w in ws if w.value == v]
                if not mine:
                    continue
                for c in t.columns:
                    if not c.nullable or c.name in (t.primary_key, ecol.name) or (t.name, ecol.name, c.name) in free:
                        continue
                    states = {w.columns.get(c.name, "unknown") for w in mine}
                    if states not in ({"null"}, {"nonnull"}):
                        continue
                    null = states == {"null"}
                    out.append(_implication(t.name, ecol.name, v, c.name, null))
    return out


def _implication(table: str, column: str, value: Any, other: str, null: bool) -> Invariant:
    cmp = "==" if null else "!="
    check = f"derived: {table}.{column} == {value!r} implies {other} {cmp} null"
    what = "empties" if null else "sets"
    expr = X.BoolOp("or", (X.Compare("!=", X.Param(column), X.Lit(value)),
                           X.Compare(cmp, X.Param(other), X.Lit(None))))
    return Invariant(table, check, f"every operation that sets {column} to {value!r} {what} {other}", "implies",
                     expr, column=column, value=value, other=other, null=null)


def derive_references(schema: DomainSchema) -> list[Invariant]:
    out = []
    for t in schema.tables:
        for c in t.columns:
            if c.type == "ref" and c.table:
                target = schema.table(c.table)
                lk = X.Lookup(c.table, X.Param(c.name))
                expr = X.BoolOp("or", (X.Compare("==", X.Param(c.name), X.Lit(None)),
                                       X.Compare("!=", X.Field(lk, target.primary_key), X.Lit(None))))
                check = f"derived: {t.name}.{c.name} is null or names an existing {c.table} row"
                out.append(Invariant(t.name, check, "a reference points at an existing row", "ref", expr,
                                     reads=frozenset({c.table}), column=c.name, other=c.table))
    return out


def _reads(e: X.Expr) -> frozenset[str]:
    return frozenset(n.table for n in X.walk(e) if isinstance(n, X.Lookup | X.Agg))


def _deps(e: X.Expr, schema: DomainSchema) -> list[tuple[str, str, str]] | None:
    """How a check reads other rows, when each read is tied to one of the row's own columns: an
    aggregate with a filter ``c=col`` gives ``(table, col, c)``, a lookup ``T[col]`` gives ``(T, col,
    T's key)``. None when some read is not (a lookup keyed by another lookup, an aggregate whose
    filters are all constants): then a write to that table may matter to any row."""
    out = []
    for n in X.walk(e):
        if isinstance(n, X.Agg):
            tied = [(c, v.name) for c, v in n.filters if isinstance(v, X.Param)]
            if not tied:
                return None
            out.append((n.table, tied[0][1], tied[0][0]))
        elif isinstance(n, X.Lookup):
            if not isinstance(n.key, X.Param):
                return None
            out.append((n.table, n.key.name, schema.table(n.table).primary_key))
    return out


def stated(schema: DomainSchema) -> list[Invariant]:
    out = []
    for t in schema.tables:
        if not t.invariants:
            continue
        scope = invariant_scope(schema, t)
        for i, req in enumerate(t.invariants):
            e = X.parse_expr(req.check, scope)
            out.append(Invariant(t.name, req.check, req.message, "stated", e, index=i, reads=_reads(e),
                                 deps=_deps(e, schema)))
    return out


def _guard_sql(e: X.Expr, table: Table | None = None) -> tuple[str, tuple]:
    """A SQL condition selecting every row on which ``e`` may be false (or fail): for a check
    ``g1 or g2 or ... or rest`` whose leading disjuncts are guards on the row's own columns
    (``col != 'v'``, ``col == 'v'``, ``col == null``, ``col != null``, ``col in [...]``, ``col not in
    [...]``), the rows on which no guard holds. Guards never fail, and a true guard makes the whole
    ``or`` true before anything after it is evaluated, so the rows left out are exactly rows the
    check passes. (``==`` and ``in`` guards are used only with literals of the column's own kind,
    so that SQL equality and Python equality agree.)"""
    parts = list(e.values) if isinstance(e, X.BoolOp) and e.op == "or" else [e]
    conds: list[str] = []
    args: list[Any] = []
    for g in parts:
        got = _need(g, table)
        if got is None:
            break
        conds.append(got[0])
        args += got[1]
    return " AND ".join(conds), tuple(args)


def _same_kind(table: Table | None, column: str, values: list[Any]) -> bool:
    """Do these literals compare in SQL as they do in Python with the column's stored values?"""
    if table is None or not table.has_column(column):
        return False
    kind = table.column(column)
    if kind.type == "bool":
        return False
    if kind.sql_kind == "TEXT":
        return all(isinstance(v, str) for v in values)
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _need(g: X.Expr, table: Table | None = None) -> tuple[str, list] | None:
    """For a guard ``g``: the SQL condition of the rows on which it is false."""
    if isinstance(g, X.Compare) and g.op in ("==", "!="):
        a, b = g.left, g.right
        if isinstance(a, X.Lit) and isinstance(b, X.Param):
            a, b = b, a
        if not (isinstance(a, X.Param) and isinstance(b, X.Lit)):
            return None
        col = '"' + a.name + '"'
        if b.value is None:
            return (f"{col} IS NOT NULL", []) if g.op == "==" else (f"{col} IS NULL", [])
        if g.op == "!=" and isinstance(b.value, str | int | float):
            return f"{col} = ?", [b.value]
        if g.op == "==" and _same_kind(table, a.name, [b.value]):
            return f"({col} IS NULL OR {col} != ?)", [b.value]
        return None
    if isinstance(g, X.InList) and isinstance(g.item, X.Param) and g.options \
            and all(isinstance(o, X.Lit) and isinstance(o.value, str | int | float) for o in g.options):
        values = [o.value for o in g.options]
        col, marks = f'"{g.item.name}"', ", ".join("?" * len(values))
        if g.negated:
            return f"{col} IN ({marks})", values
        if _same_kind(table, g.item.name, values):
            return f"({col} IS NULL OR {col} NOT IN ({marks}))", values
    return None


# ------------------------------------------------------------------ checking

class _Reader:
    """The reads of one check of a state, which does not change meanwhile: a table looked up often
    is fetched once, and counts and sums asked often with the same filter columns come from one
    GROUP BY. Answers are those of the database (keys and filter values of another kind than
    their column's are passed to it)."""

    PREFETCH = 8  # lookups of a table before the whole table is read
    GROUP = 6  # aggregates of one shape before they are all computed at once

    def __init__(self, db: DomainDB, schema: DomainSchema):
        self.db, self.schema = db, schema
        self._gets: Counter = Counter()
        self._rows: dict[str, dict[Any, dict]] = {}
        self._asked: Counter = Counter()
        self._groups: dict[tuple, dict[tuple, Any]] = {}
        self._kinds: dict[str, dict[str, bool]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        rows = self._rows.get(table)
        if rows is None:
            self._gets[table] += 1
            if self._gets[table] < self.PREFETCH or not isinstance(key, str):
                return self.db.get(table, key)
            pk = self.schema.table(table).primary_key
            rows = self._rows[table] = {r[pk]: r for r in self.db.select(table)}
        elif not isinstance(key, str):
            return self.db.get(table, key)
        return rows.get(key)

    def _typed(self, table: str, filters: dict[str, Any]) -> bool:
        """Are the filter values of their columns' kinds (text for TEXT, else not text)?"""
        kinds = self._kinds.get(table)
        if kinds is None:
            kinds = self._kinds[table] = {c.name: c.sql_kind == "TEXT" for c in self.schema.table(table).columns}
        for c, v in filters.items():
            if v is not None and isinstance(v, str) != kinds.get(c, isinstance(v, str)):
                return False
        return True

    def _group(self, what: str, table: str, column: str | None, filters: dict[str, Any]) -> Any:
        cols = tuple(sorted(filters))
        shape = (what, table, column, cols)
        group = self._groups.get(shape)
        if group is None:
            self._asked[shape] += 1
            if self._asked[shape] < self.GROUP or not self._typed(table, filters):
                return None
            q = lambda n: '"' + n + '"'  # noqa: E731
            agg = "count(*)" if what == "count" else f"coalesce(sum({q(column or '')}), 0)"
            keys = ", ".join(q(c) for c in cols)
            sql = f"SELECT {keys + ', ' if keys else ''}{agg} FROM {q(table)}" + (f" GROUP BY {keys}" if keys else "")
            group = self._groups[shape] = {tuple(r[:-1]): r[-1] for r in self.db.conn.execute(sql).fetchall()}
        elif not self._typed(table, filters):
            return None
        return group.get(tuple(filters[c] for c in cols), 0)

    def count(self, table: str, **filters: Any) -> int:
        n = self._group("count", table, None, filters)
        return self.db.count(table, **filters) if n is None else n

    def sum(self, table: str, column: str, **filters: Any) -> float:
        total = self._group("sum", table, column, filters)
        return self.db.sum(table, column, **filters) if total is None else round(total + 0.0, 2)



class Invariants:
    """Every invariant of a domain, and the check of a state against them.

    ``Invariants(source, operations=None)``: ``source`` is a :class:`~core.data.models.Domain` (its
    tools' specifications give the operations), a :class:`~core.spec.blueprint.Blueprint` (its
    operations), or a :class:`~core.data.models.DomainSchema` (stated and reference invariants only,
    unless ``operations`` — Operations or ToolSpecs — are given). Parsing and derivation happen
    once here; :meth:`for_domain` / :meth:`for_blueprint` also cache the object per source.
    """

    def __init__(self, source: Any, operations: Iterable[Any] | None = None):
        if isinstance(source, Domain):
            schema = source.domain
            ops = [t.spec for t in source.tools] if operations is None else list(operations)
        elif isinstance(source, DomainSchema):
            schema, ops = source, list(operations or [])
        else:  # a Blueprint
            schema = source.schema
            ops = list(source.operations) if operations is None else list(operations)
        self.schema = schema
        self.stated = stated(schema)
        said = {(i.table, i.expr) for i in self.stated}
        self.derived = [i for i in derive_references(schema) + derive_implications(schema, ops)
                        if (i.table, i.expr) not in said]  # a derived check the blueprint states is not doubled
        self.all = self.stated + self.derived
        self.by_table: dict[str, list[Invariant]] = {}
        for inv in self.all:
            self.by_table.setdefault(inv.table, []).append(inv)
        self._ctx = ToolContext(schema.clock)
        self._sql: dict[int, tuple[str, tuple]] = {}  # id(invariant) -> the SELECT of its candidate rows
        self._refs_into: dict[str, list[Invariant]] = {}  # referenced table -> ref invariants pointing at it
        for inv in self.all:
            if inv.kind == "ref":
                self._refs_into.setdefault(inv.other, []).append(inv)

    def __len__(self) -> int:
        return len(self.all)

    def __iter__(self):
        return iter(self.all)

    def __repr__(self) -> str:
        return f"<Invariants {self.schema.name}: {len(self.stated)} stated, {len(self.derived)} derived>"

    # ---------------------------------------------------------------- caches

    _CACHE: dict[int, tuple[weakref.ref, Invariants]] = {}

    @classmethod
    def _cached(cls, source: Any) -> Invariants:
        key = id(source)
        hit = cls._CACHE.get(key)
        if hit is None or hit[0]() is not source:
            inv = cls(source)
            cls._CACHE[key] = (weakref.ref(source), inv)
            weakref.finalize(source, cls._CACHE.pop, key, None)
            return inv
        return hit[1]

    @classmethod
    def for_domain(cls, domain: Domain) -> Invariants:
        """The domain's invariants (operations from every tool's specification, passed or not), cached."""
        return cls._cached(domain)

    @classmethod
    def for_blueprint(cls, bp: Any) -> Invariants:
        return cls._cached(bp)

    # ---------------------------------------------------------------- checks

    def check_row(self, db: DomainDB, table: str, row: dict[str, Any], ctx: ToolContext | None = None,
                  only_local: bool = False) -> list[Violation]:
        """The invariants of ``table`` that ``row`` (need not be stored) breaks."""
        ctx = ctx or self._ctx
        out = []
        pk = self.schema.table(table).primary_key
        for inv in self.by_table.get(table, ()):
            if only_local and not inv.local:
                continue
            ok, why = inv.holds(row, db, ctx)
            if not ok:
                out.append(inv.violation(row.get(pk), why))
        return out

    def violations(self, db: DomainDB, ctx: ToolContext | None = None, tables: Iterable[str] | None = None,
                   keys: dict[str, Iterable[Any]] | None = None, changed_only: bool = False,
                   limit: int | None = None) -> list[Violation]:
        """Every (row, invariant) that does not hold; [] when the state is consistent. Never raises.

        - ``tables``: check only the invariants of these tables;
        - ``keys``: ``{table: keys}``: check only these rows (tables not named are not checked);
        - ``changed_only``: only what the writes since ``db.mark()`` (``db.before``) can have broken:
          the rows written, the rows referring to a deleted row, and, for an invariant that reads
          a written table (a count or a lookup of other rows), the rows whose reads meet a written
          row (every row when a read is not tied to the row's own columns). Exact when the state
          at the mark was consistent. With ``keys`` too, both sets of rows are checked;
        - ``limit``: stop after this many violations (``limit=1``: is the state consistent?).
        """
        if not self.all:
            return []
        ctx = ctx or self._ctx
        wanted = set(tables) if tables is not None else None
        written = self._written(db) if changed_only else set()
        out: list[Violation] = []
        reads: Any = _Reader(db, self.schema)  # the state does not change while it is checked
        for table, invs in self.by_table.items():
            if wanted is not None and table not in wanted:
                continue
            if not changed_only and keys is None:
                self._check_rows(reads, ctx, table, invs, [], None, out, limit)
            else:
                ks: list[Any] = list(db.before.get(table, {})) if changed_only else []
                if keys is not None:
                    ks += [k for k in keys.get(table, ()) if k not in ks]
                full, keyed, narrowed = [], [], []
                for i in invs:
                    if not (changed_only and i.kind == "stated" and i.reads & written):
                        keyed.append(i)
                    elif (more := self._affected(db, i, written)) is None:
                        full.append(i)
                    else:
                        narrowed.append((i, ks + [k for k in more if k not in ks]))
                self._check_rows(reads, ctx, table, full, keyed if ks else [], ks, out, limit)
                for i, its in narrowed:
                    if limit is None or len(out) < limit:
                        self._check_rows(reads, ctx, table, [], [i], its, out, limit)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        if changed_only:
            self._dangling(db, out, wanted)
        return out if limit is None else out[:limit]

    def consistent(self, db: DomainDB, ctx: ToolContext | None = None, **kw: Any) -> bool:
        """No violation (stops at the first)."""
        return not self.violations(db, ctx, limit=1, **kw)

    # ---------------------------------------------------------------- internals

    def _affected(self, db: DomainDB, inv: Invariant, written: set[str]) -> set[Any] | None:
        """The rows of ``inv``'s table whose check can read a row written since the mark (None: any row).

        A row's ``count/exists/sum(A, c=col, ...)`` can change only when a written row of A had or has
        ``c`` equal to the row's ``col``; its ``A[col].x`` only when that row of A was written."""
        if inv.deps is None:
            return None
        out: set[Any] = set()
        for table, col, other in inv.deps:
            if table not in written:
                continue
            values = set()
            for key, old in db.before[table].items():
                new = db.get(table, key)
                for r in (old, new):
                    if r is not None:
                        values.add(r[other])
            for v in values:
                out.update(db.keys(inv.table, **{col: v}))
        return out

    @staticmethod
    def _written(db: DomainDB) -> set[str]:
        return {t for t, pre in db.before.items() if pre}

    def _check_rows(self, db: DomainDB, ctx: ToolContext, table: str, full: list[Invariant],
                    keyed: list[Invariant], keys: list[Any] | None, out: list[Violation], limit: int | None) -> None:
        """``full`` invariants on every row of ``table``, ``keyed`` ones on the rows with ``keys`` (every
        row when ``keys`` is None)."""
        if keys is None:
            full, keyed = full + keyed, []
        pk = self.schema.table(table).primary_key
        for inv in full:  # the rows its guard cannot clear, selected in SQL, then checked one by one
            for row in self._candidates(db, inv):
                ok, why = inv.holds(row, db, ctx)
                if not ok:
                    out.append(inv.violation(row[pk], why))
                    if limit is not None and len(out) >= limit:
                        return
        if not keyed:
            return
        for row in (db.get(table, k) for k in keys or ()):
            if row is None:
                continue
            for inv in keyed:
                ok, why = inv.holds(row, db, ctx)
                if not ok:
                    out.append(inv.violation(row[pk], why))
                    if limit is not None and len(out) >= limit:
                        return

    def _candidates(self, db: DomainDB, inv: Invariant) -> list[dict[str, Any]]:
        """The rows of ``inv``'s table that may break it: all rows but those a leading guard of the
        check (``status != 'v' or ...``, ``col == null or ...``) already makes true; for a reference,
        the rows whose referenced row is missing."""
        t = self.schema.table(inv.table)
        sql = self._sql.get(id(inv))
        if sql is None:
            q = lambda n: '"' + n + '"'  # noqa: E731
            if inv.kind == "ref":
                target = self.schema.table(inv.other)
                cond = (f"{q(inv.column)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {q(target.name)} r "
                        f"WHERE r.{q(target.primary_key)} = {q(t.name)}.{q(inv.column)})")
                args: tuple = ()
            else:
                cond, args = _guard_sql(inv.expr, t)
            sql = self._sql[id(inv)] = (f"SELECT * FROM {q(t.name)}" + (f" WHERE {cond}" if cond else "")
                                        + f" ORDER BY {q(t.primary_key)}", args)
        base = getattr(db, "db", db)  # (a _Reader's database)
        ti = base.tables[inv.table]
        return [base._row(ti, tup) for tup in base.conn.execute(sql[0], sql[1]).fetchall()]

    def _dangling(self, db: DomainDB, out: list[Violation], wanted: set[str] | None) -> None:
        """Rows left pointing at a row deleted since the mark (their own row did not change)."""
        seen = {(v.table, v.key, v.check) for v in out}
        for target, pre in db.before.items():
            gone = [k for k, old in pre.items() if old is not None and db.get(target, k) is None]
            for inv in self._refs_into.get(target, ()):
                if wanted is not None and inv.table not in wanted:
                    continue
                for k in gone:
                    for key in db.keys(inv.table, **{inv.column: k}):
                        if (inv.table, key, inv.check) not in seen:
                            seen.add((inv.table, key, inv.check))
                            out.append(inv.violation(key, f"no {target} row {k!r}"))
