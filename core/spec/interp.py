"""The specification interpreter: runs an operation's declarative meaning directly.

It is the reference the procedural tests hold every implementation to, and the judge the
state builder uses to check preconditions. It never looks at generated source.

Semantics (documented in docs/blueprints.md): every row named in requires/effects/returns is
looked up first (``not_found`` if one is missing), then requirements are checked in order
(``precondition`` on the first that fails), then effects run in order. Row fields
(``riders[rider_id].balance``) in requires and effects are read once, *before* any effect;
counts and sums (``count(...)``, ``sum(...)``) are evaluated when their effect runs, so they
see earlier effects; ``returns`` reads the state after all effects.
"""

from __future__ import annotations

import operator
from typing import Any

from core.data.db import DomainDB
from core.runtime.context import NotFound, PreconditionFailed, ToolContext
from core.spec import expr as X
from core.spec.blueprint import Operation

CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
       ">=": operator.ge}
ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class Evaluator:
    def __init__(self, db: DomainDB, ctx: ToolContext, args: dict[str, Any]):
        self.db, self.ctx, self.args = db, ctx, args
        self.rows: dict[X.Lookup, dict] = {}
        self.inserted: dict | None = None

    def fetch(self, lk: X.Lookup) -> dict:
        row = self.rows.get(lk)
        if row is None:
            key = self.eval(lk.key)
            row = self.db.get(lk.table, key)
            if row is None:
                raise NotFound(lk.table, key)
            self.rows[lk] = row
        return row

    def eval(self, e: Any) -> Any:
        if isinstance(e, X.Lit):
            return e.value
        if isinstance(e, X.Param):
            return self.args.get(e.name)
        if isinstance(e, X.Clock):
            return self.ctx.today if e.name == "today" else self.ctx.now
        if isinstance(e, X.Field):
            return self.fetch(e.row)[e.column]
        if isinstance(e, X.InsertedField):
            return self.inserted[e.column] if self.inserted else None
        if isinstance(e, X.BinOp):
            return ARITH[e.op](self.eval(e.left), self.eval(e.right))
        if isinstance(e, X.Compare):
            return CMP[e.op](self.eval(e.left), self.eval(e.right))
        if isinstance(e, X.InList):
            found = self.eval(e.item) in [self.eval(o) for o in e.options]
            return not found if e.negated else found
        if isinstance(e, X.BoolOp):
            if e.op == "and":
                return all(self.eval(v) for v in e.values)
            return any(self.eval(v) for v in e.values)
        if isinstance(e, X.Not):
            return not self.eval(e.value)
        if isinstance(e, X.Neg):
            return -self.eval(e.value)
        if isinstance(e, X.Agg):
            filters = {c: self.eval(v) for c, v in e.filters}
            if e.fn == "sum":
                return self.db.sum(e.table, e.column, **filters)
            n = self.db.count(e.table, **filters)
            return n > 0 if e.fn == "exists" else n
        if isinstance(e, X.Call):
            a = [self.eval(x) for x in e.args]
            if e.fn == "add_days":
                return self.ctx.add_days(*a)
            if e.fn == "days_between":
                return self.ctx.days_between(*a)
            if e.fn == "lower":
                return str(a[0]).lower()
            return {"round": round, "min": min, "max": max, "abs": abs}[e.fn](*a)
        raise TypeError(f"cannot evaluate {e!r}")


def effect_lookups(eff: X.Effect) -> list[X.Lookup]:
    out = X.lookups(eff)
    if isinstance(eff, X.Update | X.Delete) and eff.key is not None:
        lk = X.Lookup(eff.table, eff.key)
        if lk not in out:
            out.append(lk)
    return out


def op_lookups(op: Operation) -> list[X.Lookup]:
    """Every row the operation needs, in the order the implementation fetches them."""
    out: list[X.Lookup] = []
    parts: list[Any] = [e for e, _ in op.requires]
    for p in parts:
        for lk in X.lookups(p):
            if lk not in out:
                out.append(lk)
    for eff in op.effects:
        for lk in effect_lookups(eff):
            if lk not in out:
                out.append(lk)
    if isinstance(op.returns, X.RetRow | X.RetObject):
        for lk in X.lookups(op.returns):
            if lk not in out and not _depends_on_inserted(lk):
                out.append(lk)
    return out


def _depends_on_inserted(e: Any) -> bool:
    return any(isinstance(x, X.InsertedField) for x in X.walk(e))


def check(op: Operation, ev: Evaluator) -> int | None:
    """Index of the first requirement that fails, or None."""
    for i, (e, _) in enumerate(op.requires):
        if not ev.eval(e):
            return i
    return None


def observed(e: Any, ev: Evaluator) -> dict[str, Any]:
    """The values a requirement read: what the agent is told when it fails.

    Stored fields as ``table.column``, aggregates by their text; a requirement on the clock also
    reports ``today``/``now`` and the arguments it compares with it ("the date is in the past" says
    which date and which today)."""
    out = {}
    for x in X.walk(e):
        if isinstance(x, X.Field):
            out[f"{x.row.table}.{x.column}"] = ev.eval(x)
        elif isinstance(x, X.Agg):
            out[X.render(x)] = ev.eval(x)
    for x in X.clock_operands(e):
        out[x.name] = ev.eval(x)
    return out


def run(op: Operation, db: DomainDB, ctx: ToolContext, args: dict[str, Any]) -> Any:
    """Apply the operation to ``db`` (no transaction handling here); return its result."""
    ev = Evaluator(db, ctx, args)
    for lk in op_lookups(op):
        ev.fetch(lk)
    failed = check(op, ev)
    if failed is not None:
        e, req = op.requires[failed]
        raise PreconditionFailed(req.message or f"requirement not met: {req.check}", observed=observed(e, ev))
    schema = db.schema
    for eff in op.effects:
        if isinstance(eff, X.Insert):
            t = schema.table(eff.table)
            given = dict((c, ev.eval(v)) for c, v in eff.values)
            values = {c.name: given.get(c.name, c.default) for c in t.columns if c.name != t.primary_key}
            ev.inserted = db.insert(eff.table, values)
        elif isinstance(eff, X.Update):
            if eff.key is not None:
                row = ev.fetch(X.Lookup(eff.table, eff.key))
                targets = [row]
            else:
                targets = db.select(eff.table, **{c: ev.eval(v) for c, v in eff.filters or ()})
            pk = schema.table(eff.table).primary_key
            for row in targets:
                new = {}
                for col, how, v in eff.sets:
                    val = ev.eval(v)
                    new[col] = val if how == "=" else row[col] + val if how == "+=" else row[col] - val
                db.update(eff.table, row[pk], new)
        elif isinstance(eff, X.Delete):
            row = ev.fetch(X.Lookup(eff.table, eff.key))
            db.delete(eff.table, row[schema.table(eff.table).primary_key])
    return result(op, db, ev)


def result(op: Operation, db: DomainDB, ev: Evaluator) -> Any:
    r = op.returns
    post = Evaluator(db, ev.ctx, ev.args) if op.effects else ev
    post.inserted = ev.inserted
    if isinstance(r, X.RetInserted):
        t = db.schema.table(_inserted_table(op))
        return db.get(t.name, ev.inserted[t.primary_key])
    if isinstance(r, X.RetRow):
        key = ev.eval(r.row.key)
        return db.get(r.row.table, key)
    if isinstance(r, X.RetOne):
        rows = db.select(r.table, **{c: ev.eval(v) for c, v in r.filters})
        if len(rows) != 1:
            raise NotFound(r.table, ev.eval(r.filters[0][1]))
        return rows[0]
    if isinstance(r, X.RetList):
        return db.select(r.table, **{c: ev.eval(v) for c, v in r.filters})
    return {k: post.eval(v) for k, v in r.fields}


def _inserted_table(op: Operation) -> str:
    tables = [e.table for e in op.effects if isinstance(e, X.Insert)]
    return tables[-1]
