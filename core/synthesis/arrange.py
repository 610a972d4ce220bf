"""Building states for an operation: choose arguments and adjust rows so its requirements hold.

Used by procedural testing (a happy path, a boundary case, each requirement violated while
the others hold) and by task initialization (a state in which a whole chain runs). It reads
requirements through the specification interpreter, never through an implementation.

Repairs are local and realistic: a row's column is set to a value that satisfies a comparison
(respecting the column's type and bounds), a conflicting row's status is changed, or a new row
is made by the seed factory. When no repair works the caller is told (``None``), never lied to.
With ``consistent`` set, an arrangement that leaves rows breaking the domain's invariants (the
factory's, see :mod:`core.data.invariants`) is repaired where the requirements allow
(:meth:`Arranger.make_consistent`); procedural tests set it.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from core.data.db import DomainDB, IntegrityError
from core.data.models import Column, ParamSpec
from core.data.seed import RowFactory
from core.runtime.context import NotFound, ToolContext
from core.spec import expr as X
from core.spec.blueprint import Operation
from core.spec.interp import Evaluator, op_lookups

FLIP = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
MAX_ROUNDS = 10


class Arranger:
    def __init__(self, db: DomainDB, factory: RowFactory, ctx: ToolContext, rng: random.Random):
        self.db, self.factory, self.ctx, self.rng = db, factory, ctx, rng
        self.schema = db.schema
        self.boundary = False
        self.consistent = False  # True: repair the rows an arrangement leaves breaking the factory's invariants

    # ------------------------------------------------------------------ arguments

    def choose_args(self, op: Operation, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
        fixed = fixed or {}
        args: dict[str, Any] = {}
        key_params = {lk.key.name: lk.table for lk in op_lookups(op) if isinstance(lk.key, X.Param)}
        for p in op.spec.params:
            if p.name in fixed:
                args[p.name] = fixed[p.name]
            elif p.name in key_params:
                args[p.name] = self.pick_key(key_params[p.name])
            else:
                args[p.name] = self.param_value(p)
        return args

    def pick_key(self, table: str, exclude: Any = None) -> Any:
        keys = [k for k in self.db.keys(table) if k != exclude]
        if not keys:
            row = self.factory.make_row(self.schema.table(table), self._keys(), self.db.select(table))
            row = self.db.insert(table, row)
            return row[self.schema.table(table).primary_key]
        return self.rng.choice(keys)

    def _keys(self) -> dict[str, list]:
        return {t.name: self.db.keys(t.name) for t in self.schema.tables}

    def param_value(self, p: ParamSpec) -> Any:
        rng = self.rng
        if p.column:
            tname, cname = p.column.split(".")
            t = self.schema.table(tname)
            col = t.column(cname)
            if col.type == "id" or col.type == "ref":
                return self.pick_key(tname if col.type == "id" else col.table)
            if col.unique:
                if p.name in self._fresh:  # the operation requires the value to be new
                    taken = {r[cname] for r in self.db.select(tname)}
                    return self.factory.unique_value(t, col, {}, self._keys(), taken)
                values = [r[cname] for r in self.db.select(tname) if r[cname] is not None]
                if values:
                    return rng.choice(values)
            v = self.factory.value(t, col, {}, self._keys())
            if v is None and col.type not in ("ref",):
                v = self.factory.value(t, col.model_copy(update={"nullable": False}), {}, self._keys())
            return v
        if p.enum:
            return rng.choice(p.enum)
        if p.type == "integer":
            lo, hi = int(p.minimum if p.minimum is not None else 1), int(p.maximum if p.maximum is not None else 10)
            return rng.randint(max(lo, min(1, hi)), hi) if hi >= 1 else rng.randint(lo, hi)
        if p.type == "number":
            lo, hi = p.minimum if p.minimum is not None else 1.0, p.maximum if p.maximum is not None else 100.0
            return round(rng.uniform(max(lo, 0.01) if hi > 0 else lo, hi), 2)
        if p.type == "boolean":
            return rng.random() < 0.5
        if p.format == "date":
            return self.ctx.add_days(self.ctx.today, rng.randint(1, 30))
        return self.factory.fake.sentence(nb_words=5).rstrip(".")

    # ------------------------------------------------------------------ arranging

    def arrange(self, op: Operation, args: dict[str, Any], violate: int | None = None,
                boundary: bool = False, keep: list[X.Expr] | None = None) -> dict[str, Any] | None:
        """Adjust ``self.db`` (and ``args``) so every requirement of ``op`` holds, except
        ``violate`` which must fail. ``keep`` are extra conditions that must stay true.
        Returns the arguments, or None when no arrangement was found."""
        reqs = [e for e, _ in op.requires]
        keep = keep or []
        for _ in range(MAX_ROUNDS):
            changed = self._ensure_rows(op, args)
            for i, e in enumerate(reqs):
                if i == violate:
                    continue
                if not self._holds(e, args):
                    changed = self.repair(e, True, args) or changed
            if boundary:
                for i, e in enumerate(reqs):
                    if i != violate and isinstance(e, X.Compare) and e.op in ("<", "<=", ">", ">="):
                        self.boundary = True
                        try:
                            self.repair(e, True, args, force=True)
                        finally:
                            self.boundary = False
                boundary = False
                changed = True
            if violate is not None and self._holds(reqs[violate], args):
                self.boundary = self.rng.random() < 0.5
                try:
                    changed = self.repair(reqs[violate], False, args) or changed
                finally:
                    self.boundary = False
            if self._ok(op, reqs, args, violate, keep):
                if self.consistent:
                    self.make_consistent(op, args, violate, keep)
                return args
            if not changed:
                return None
        if self._ok(op, reqs, args, violate, keep):
            if self.consistent:
                self.make_consistent(op, args, violate, keep)
            return args
        return None

    def make_consistent(self, op: Operation, args: dict, violate: int | None = None,
                        keep: list[X.Expr] | None = None) -> bool:
        """Repair the rows written since ``db.mark()`` that break the factory's invariants
        (:meth:`core.data.seed.RowFactory.repair`), each repair kept only if the requirements are still
        as arranged (all hold but ``violate``, and ``keep``). Returns whether the writes keep the
        invariants; when the repair fails, the state is left as it was. ``arrange`` calls it when
        ``self.consistent`` is set."""
        inv = getattr(self.factory, "invariants", None)
        if not inv or inv.consistent(self.db, self.ctx, changed_only=True):
            return True
        reqs = [e for e, _ in op.requires]
        snap, before = self.db.snapshot(), {t: dict(p) for t, p in self.db.before.items()}
        left = self.factory.repair(self.db, rounds=3, grow=True, changed_only=True,
                                   keep=lambda: self._ok(op, reqs, args, violate, keep or []))
        if not left:
            return True
        self.db.restore(snap)
        self.db.before = before
        return False

    def _ok(self, op: Operation, reqs: list, args: dict, violate: int | None, keep: list) -> bool:
        try:
            ev = Evaluator(self.db, self.ctx, args)
            for lk in op_lookups(op):
                ev.fetch(lk)
            for i, e in enumerate(reqs):
                if bool(ev.eval(e)) != (i != violate):
                    return False
            return all(ev.eval(e) for e in keep)
        except (NotFound, TypeError, KeyError, ValueError, ZeroDivisionError):
            return False

    def _holds(self, e: X.Expr, args: dict) -> bool:
        try:
            return bool(Evaluator(self.db, self.ctx, args).eval(e))
        except (NotFound, TypeError, KeyError, ValueError, ZeroDivisionError):
            return False

    def _ensure_rows(self, op: Operation, args: dict) -> bool:
        """Make every row the operation looks up exist (a null reference gets a real one)."""
        changed = False
        for lk in op_lookups(op):
            ev = Evaluator(self.db, self.ctx, args)
            try:
                key = ev.eval(lk.key)
            except NotFound:
                continue  # an outer lookup is missing; fixed on the next round
            except (TypeError, KeyError):
                return changed
            if key is not None and self.db.get(lk.table, key) is not None:
                continue
            new = self.pick_key(lk.table)
            if isinstance(lk.key, X.Param):
                args[lk.key.name] = new
                changed = True
            elif isinstance(lk.key, X.Field):
                changed = self._set_field(lk.key, new, args) or changed
        return changed

    # ------------------------------------------------------------------ repairs

    def repair(self, e: X.Expr, want: bool, args: dict, force: bool = False) -> bool:
        if isinstance(e, X.Not):
            return self.repair(e.value, not want, args, force)
        if isinstance(e, X.BoolOp):
            if (e.op == "and") == want:  # all children must become `want`
                done = False
                for v in e.values:
                    if force or self._holds(v, args) != want:
                        done = self.repair(v, want, args, force) or done
                return done
            order = list(e.values)
            self.rng.shuffle(order)
            return any(self.repair(v, want, args, force) for v in order[:1])
        if isinstance(e, X.Compare):
            op = e.op if want else FLIP[e.op]
            sides = [(e.left, op, e.right), (e.right, MIRROR[op], e.left)]
            if isinstance(e.left, X.Agg) and isinstance(e.right, X.Field):
                sides.reverse()
            for target, o, other in sides:
                if self._settable(target, args):
                    try:
                        r = Evaluator(self.db, self.ctx, args).eval(other)
                    except (NotFound, TypeError, KeyError):
                        return False
                    if self._make(target, o, r, args):
                        return True
            return False
        if isinstance(e, X.InList):
            try:
                opts = [Evaluator(self.db, self.ctx, args).eval(o) for o in e.options]
            except (NotFound, TypeError, KeyError):
                return False
            inside = want != e.negated
            if inside:
                return self._assign(e.item, self.rng.choice(opts), args)
            others = [v for v in self._domain_of(e.item, args) if v not in opts]
            return bool(others) and self._assign(e.item, self.rng.choice(others), args)
        if isinstance(e, X.Agg) and e.fn == "exists":
            return self._count_to(e, 1 if want else 0, args)
        if isinstance(e, X.Field):
            return self._assign(e, want, args)
        return False

    def _settable(self, e: X.Expr, args: dict) -> bool:
        if isinstance(e, X.Field):
            t = self.schema.table(e.row.table)
            return e.column != t.primary_key
        if isinstance(e, X.Param):
            return not self._is_key_param(e.name, args)
        return isinstance(e, X.Agg) and e.fn == "count"

    def _is_key_param(self, name: str, args: dict) -> bool:
        return getattr(self, "_op_keys", None) is not None and name in self._op_keys

    def _domain_of(self, e: X.Expr, args: dict) -> list[Any]:
        if isinstance(e, X.Field):
            return self._column_domain(self.schema.table(e.row.table).column(e.column), limit=None)
        return []

    def _make(self, target: X.Expr, op: str, r: Any, args: dict) -> bool:
        if isinstance(target, X.Agg):
            n = self._count_target(op, r)
            return n is not None and self._count_to(target, n, args)
        value = self._value_for(target, op, r, args)
        if value is _NONE:
            return False
        return self._assign(target, value, args)

    def _count_target(self, op: str, r: Any) -> int | None:
        if not isinstance(r, int | float) or isinstance(r, bool):
            return None
        r = int(r) if float(r).is_integer() else r
        if op == "==":
            return int(r) if r >= 0 else None
        if op == "!=":
            return int(r) + 1 if r == 0 or self.rng.random() < 0.5 else int(r) - 1
        if op in (">", ">="):
            return int(r) + (1 if op == ">" else 0) if r >= 0 else 0
        if op in ("<", "<="):
            n = int(r) - (1 if op == "<" else 0)
            return n if n >= 0 else None
        return None

    def _count_to(self, agg: X.Agg, n: int, args: dict) -> bool:
        try:
            filters = {c: Evaluator(self.db, self.ctx, args).eval(v) for c, v in agg.filters}
        except (NotFound, TypeError, KeyError):
            return False
        table = self.schema.table(agg.table)
        keys = self.db.keys(agg.table, **filters)
        if len(keys) > n:
            for k in self.rng.sample(keys, len(keys) - n):
                if not self._unmatch(table, k, filters):
                    return False
            return True
        if len(keys) < n:
            for _ in range(n - len(keys)):
                row = self.factory.make_row(table, self._keys(), self.db.select(agg.table), overrides=filters)
                self.db.insert(agg.table, row)
            return True
        return False

    def _unmatch(self, table: Any, key: Any, filters: dict) -> bool:
        """Change one filtered column of a row so it no longer matches."""
        cols = sorted(filters, key=lambda c: (table.column(c).type != "enum", c))
        for c in cols:
            col = table.column(c)
            if col.type == "enum":
                others = [v for v in col.values if v != filters[c]]
                self.db.update(table.name, key, {c: self.rng.choice(others)})
                return True
            if col.type == "ref":
                others = [k for k in self.db.keys(col.table) if k != filters[c]]
                if others:
                    self.db.update(table.name, key, {c: self.rng.choice(others)})
                    return True
                if col.nullable:
                    self.db.update(table.name, key, {c: None})
                    return True
        self.db.delete(table.name, key)
        return True

    # ------------------------------------------------------------------ values

    def _kind(self, target: X.Expr, args: dict) -> tuple[str, Column | ParamSpec | None]:
        if isinstance(target, X.Field):
            col = self.schema.table(target.row.table).column(target.column)
            return col.type, col
        if isinstance(target, X.Param):
            p = next((p for p in self._params if p.name == target.name), None)
            if p is None:
                return "string", None
            if p.column:
                t, c = p.column.split(".")
                col = self.schema.table(t).column(c)
                return col.type, p
            kind = {"integer": "int", "number": "money", "boolean": "bool"}.get(p.type, "string")
            if p.format == "date":
                kind = "date"
            if p.enum:
                kind = "enum"
            return kind, p
        return "string", None

    def _bounds(self, spec: Column | ParamSpec | None) -> tuple[float | None, float | None]:
        if isinstance(spec, Column):
            return (spec.min, spec.max) if spec.type in ("int", "money", "float") else (None, None)
        if isinstance(spec, ParamSpec):
            return spec.minimum, spec.maximum
        return None, None

    def _value_for(self, target: X.Expr, op: str, r: Any, args: dict) -> Any:
        kind, spec = self._kind(target, args)
        rng, edge = self.rng, self.boundary
        if op == "==":
            return r
        if kind in ("int", "money", "float") and isinstance(r, int | float) and not isinstance(r, bool):
            step = 1 if kind == "int" else 0.01
            lo, hi = self._bounds(spec)
            lo = -1e9 if lo is None else lo
            hi = 1e9 if hi is None else hi
            if op == "!=":
                cands = [r + step, r - step, r + 5 * step]
            elif op in (">", ">="):
                base = r + (step if op == ">" else 0)
                cands = [base] if edge else [base + (rng.randint(0, 5) if kind == "int" else round(rng.uniform(0, 20), 2)), base]
            else:
                base = r - (step if op == "<" else 0)
                cands = [base] if edge else [base - (rng.randint(0, 5) if kind == "int" else round(rng.uniform(0, 20), 2)), base]
            for v in cands:
                v = int(round(v)) if kind == "int" else round(v, 2)
                if lo - 1e-9 <= v <= hi + 1e-9:
                    return v
            # outside the column's bounds: still a legal value of the type, for state building
            v = cands[-1]
            return _NONE if isinstance(spec, ParamSpec) else (int(round(v)) if kind == "int" else round(v, 2))
        if kind in ("date", "datetime") and isinstance(r, str):
            day = date.fromisoformat(r[:10])
            delta = {"!=": 3, ">": 1, ">=": 0, "<": -1, "<=": 0}[op]
            if not edge and op in (">", ">="):
                delta += rng.randint(0, 20)
            elif not edge and op in ("<", "<="):
                delta -= rng.randint(0, 20)
            d = (day + timedelta(days=delta)).isoformat()
            return d if kind == "date" else d + r[10:]
        if op == "!=":
            if r is None:
                dom = self._domain_of(target, args)
                if dom:
                    return rng.choice(dom)
                if kind == "ref" and isinstance(spec, Column):
                    keys = self.db.keys(spec.table)
                    return rng.choice(keys) if keys else _NONE
                return _NONE
            if isinstance(spec, Column) and spec.nullable and kind == "ref" and rng.random() < 0.3:
                return None
            dom = [v for v in self._domain_of(target, args) if v != r]
            if isinstance(spec, ParamSpec) and spec.enum:
                dom = [v for v in spec.enum if v != r]
            if dom:
                return rng.choice(dom)
            if isinstance(r, bool):
                return not r
            if isinstance(r, int | float):
                return r + 1
            if isinstance(r, str):
                return r + "x"
            return _NONE
        return _NONE

    def _assign(self, target: X.Expr, value: Any, args: dict) -> bool:
        if isinstance(target, X.Param):
            if self._is_key_param(target.name, args):
                return False
            args[target.name] = value
            return True
        if isinstance(target, X.Field):
            return self._set_field(target, value, args)
        return False

    def _set_field(self, f: X.Field, value: Any, args: dict) -> bool:
        t = self.schema.table(f.row.table)
        if f.column == t.primary_key:
            return False
        col = t.column(f.column)
        if value is None and not col.nullable:
            return False
        if col.type == "enum" and value not in col.values:
            return False
        try:
            key = Evaluator(self.db, self.ctx, args).eval(f.row.key)
        except (NotFound, TypeError, KeyError):
            return False
        if self.db.get(t.name, key) is None:
            return False
        if col.unique and value is not None and self.db.count(t.name, **{f.column: value}):
            return False
        self.db.update(t.name, key, {f.column: value})
        return True

    def add_near_misses(self, op: Operation, args: dict, violate: int | None = None) -> int:
        """Add rows that match every filter of a count/sum/list but one, keeping the requirements.

        Such rows make a dropped filter visible: an implementation that forgets
        ``status='active'`` counts them and gets a different answer."""
        aggs: list[tuple[str, tuple]] = [(n.table, n.filters) for e, _ in op.requires for n in X.walk(e)
                                         if isinstance(n, X.Agg)]
        aggs += [(n.table, n.filters) for n in X.walk(op.returns) if isinstance(n, X.Agg)]
        if isinstance(op.returns, X.RetList):
            aggs.append((op.returns.table, op.returns.filters))
        reqs = [e for e, _ in op.requires]
        added = 0
        for table_name, flt in aggs:
            if len(flt) < 2:
                continue
            try:
                values = {c: Evaluator(self.db, self.ctx, args).eval(v) for c, v in flt}
            except (NotFound, TypeError, KeyError):
                continue
            table = self.schema.table(table_name)
            for c in values:
                other = [v for v in self._column_domain(table.column(c), values[c]) if v != values[c]]
                if not other:
                    continue
                snap = self.db.snapshot()
                row = self.factory.make_row(table, self._keys(), self.db.select(table_name),
                                            overrides={**values, c: self.rng.choice(other)})
                try:
                    self.db.insert(table_name, row)
                except IntegrityError:  # e.g. a filter value that is null in a required column
                    self.db.restore(snap)
                    continue
                if self._ok(op, reqs, args, violate, []):
                    added += 1
                else:
                    self.db.restore(snap)
        return added

    def _column_domain(self, col: Column, current: Any = None, limit: int | None = 50) -> list[Any]:
        """Values a column can take: its enum, existing keys for a reference (at most ``limit``),
        booleans; with ``current``, dates and numbers next to it."""
        if current is not None and col.type in ("date", "datetime"):
            return [self.ctx.add_days(current, d) + (str(current)[10:] if col.type == "datetime" else "")
                    for d in (1, -1, 7)]
        if current is not None and col.type in ("int", "money", "float") and not isinstance(current, bool):
            return [current + 1, current - 1]
        if col.type == "enum":
            return list(col.values)
        if col.type == "ref":
            return self.db.keys(col.table)[:limit]
        if col.type == "bool":
            return [True, False]
        return []

    # the operation being arranged (parameters and key parameters)
    def bind(self, op: Operation) -> Arranger:
        self._params = op.spec.params
        self._op_keys = {lk.key.name for lk in op_lookups(op) if isinstance(lk.key, X.Param)}
        self._fresh = {v.name for e, _ in op.requires for n in X.walk(e) if isinstance(n, X.Agg)
                       for _, v in n.filters if isinstance(v, X.Param)}
        return self


class _Sentinel:
    pass


_NONE = _Sentinel()
