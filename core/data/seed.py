"""Seed data: realistic rows for a domain's tables, reproducible from a seed.

Names, emails, phones, addresses and free text come from Faker (seeded per domain); numbers,
enums, dates and references from a ``random.Random`` with the same seed. Same seed, same rows.
Unique columns stay unique, references point at existing rows, numbers stay in their bounds.

Rows also keep the domain's invariants (:mod:`core.data.invariants`): a new row that breaks a check on
its own columns is fixed (a column a status implies is emptied or given a value) or made again,
and once every table exists :meth:`RowFactory.seed_rows` checks the whole state, cross-table
checks included, and makes each violating row again (a bounded number of times, from the same
random generator, so the rows stay reproducible). Rows that cannot be made consistent raise
:class:`SeedError`, naming the table and the invariant.
"""

from __future__ import annotations

import random
import re
import sqlite3
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import networkx as nx
from faker import Faker

from core.data.models import Column, DomainSchema, Table

if TYPE_CHECKING:
    from core.data.invariants import Invariant, Invariants

ROW_TRIES = 30  # a new row that breaks an invariant on its own columns is made again at most this often
SEED_ROUNDS = 12  # rounds of repair over the whole seed state
REGENERATE = 20  # attempts at one violating seed row per round


class SeedError(ValueError):
    """Seed rows that no repair makes keep an invariant: the blueprint's invariants cannot be met."""

    def __init__(self, table: str, where: str, check: str, message: str, detail: str):
        self.table, self.where, self.check, self.detail = table, where, check, detail
        self.message = (f"no seed row of {table} can be made to keep {check!r}"
                        + (f" ({message})" if message else "") + f": {detail}")
        super().__init__(f"{where}: {self.message}")


_FAKER: Faker | None = None


def _faker() -> Faker:
    global _FAKER
    if _FAKER is None:
        _FAKER = Faker("en_US")
    return _FAKER


def derive_seed(seed: int, *parts: str) -> int:
    """A stable sub-seed (independent of PYTHONHASHSEED)."""
    return zlib.crc32("/".join([str(seed), *parts]).encode()) & 0x7FFFFFFF


def table_order(schema: DomainSchema) -> list[Table]:
    """Tables with referenced tables first (self references ignored)."""
    g = nx.DiGraph()
    for t in schema.tables:
        g.add_node(t.name)
        for c in t.columns:
            if c.type == "ref" and c.table != t.name:
                g.add_edge(c.table, t.name)
    try:
        order = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        raise ValueError(f"tables reference each other in a cycle: {' -> '.join(a for a, _ in cycle)}; "
                         "make one of the references nullable and point it the other way") from None
    return [schema.table(n) for n in order]


class RowFactory:
    """Makes rows for a domain; used for the seed database and for building task states."""

    def __init__(self, schema: DomainSchema, seed: int, invariants: Invariants | None = None):
        """``invariants``: what rows must keep; default ``Invariants(schema)`` (stated and reference
        invariants; pass ``Invariants(blueprint)`` for the derived status implications too, as
        synthesis does)."""
        if invariants is None:
            from core.data.invariants import (
                Invariants,  # core.data.invariants imports core.spec.blueprint, which imports us
            )

            invariants = Invariants(schema)
        self.invariants = invariants
        self.local: dict[str, list[Invariant]] = {t.name: [i for i in invariants.by_table.get(t.name, ())
                                                            if i.local] for t in schema.tables}
        self.repaired_rows: set[tuple[str, Any]] = set()  # (table, key) of seed rows that broke an invariant
        self.schema = schema
        self.rng = random.Random(derive_seed(seed, schema.name, "rows"))
        self.fake = Faker("en_US")  # its own instance: another factory can never shift this one's sequence
        self.fake.seed_instance(derive_seed(seed, schema.name, "faker"))
        self.clock = datetime.fromisoformat(schema.clock)
        self.seen: dict[tuple[str, str], set] = {}

    def value(self, table: Table, col: Column, row: dict[str, Any], keys: dict[str, list]) -> Any:
        rng, fake = self.rng, self.fake
        t = col.type
        if t == "ref":
            pool = keys.get(col.table or "", [])
            if not pool or (col.nullable and rng.random() < 0.15):
                return None
            return rng.choice(pool)
        if col.nullable and t not in ("id",) and rng.random() < 0.1 and not col.unique:
            return None
        if t == "enum":
            return rng.choice(col.values)
        if t == "int":
            return rng.randint(int(col.min), int(col.max))
        if t == "money":
            return round(rng.uniform(col.min, col.max), 2)
        if t == "float":
            return round(rng.uniform(col.min, col.max), 3)
        if t == "bool":
            return rng.random() < 0.5
        if t == "date":
            return (self.clock.date() + timedelta(days=rng.randint(int(col.min), int(col.max)))).isoformat()
        if t == "datetime":
            secs = rng.randint(int(col.min * 86400), int(col.max * 86400))
            return (self.clock + timedelta(seconds=secs)).replace(microsecond=0).isoformat()
        if t == "name":
            return fake.name()
        if t == "first_name":
            return fake.first_name()
        if t == "last_name":
            return fake.last_name()
        if t == "email":
            person = row.get("name") or row.get("full_name") or fake.name()
            parts = re.sub(r"[^a-z ]", "", str(person).lower()).split()
            local = ".".join(parts[-2:]) if len(parts) >= 2 else (parts[0] if parts else fake.user_name())
            return f"{local}@{fake.free_email_domain()}"
        if t == "phone":
            return fake.numerify("555-###-####")
        if t == "text":
            return fake.sentence(nb_words=rng.randint(4, 9)).rstrip(".")
        if t == "word":
            return fake.word()
        if t == "code":
            return fake.bothify(col.pattern or "??-####").upper()
        if t == "company":
            return fake.company()
        if t == "address":
            return fake.street_address()
        if t == "city":
            return fake.city()
        if t == "string":
            if col.faker:
                method = getattr(fake, col.faker, None)
                if method is None or not callable(method):
                    raise ValueError(f"{table.name}.{col.name}: Faker has no provider {col.faker!r}")
                return str(method())
            return fake.word()
        raise ValueError(f"{table.name}.{col.name}: cannot generate type {t}")

    def unique_value(self, table: Table, col: Column, row: dict, keys: dict, taken: set) -> Any:
        for attempt in range(60):
            v = self.value(table, col, row, keys)
            if v is None or v not in taken:
                return v
            if attempt > 20 and isinstance(v, str):
                v = self._vary(col, v, attempt)
                if v not in taken:
                    return v
        raise ValueError(f"{table.name}.{col.name}: cannot find a unique value after 60 tries")

    def _vary(self, col: Column, v: str, n: int) -> str:
        if col.type == "email" and "@" in v:
            local, _, dom = v.partition("@")
            return f"{local}{n}@{dom}"
        return f"{v}{n}"

    def make_row(self, table: Table, keys: dict[str, list], existing: list[dict] | None = None,
                 overrides: dict[str, Any] | None = None, pk: Any = None) -> dict[str, Any]:
        """A new row for ``table``; ``existing`` rows are used to keep unique columns unique.

        The row keeps the table's invariants on its own columns (checks that read no other row):
        a column a status implies is emptied or filled, else the row is made again (``overrides``
        are kept), up to ``ROW_TRIES`` times; after that the last try is returned as it is."""
        overrides = overrides or {}
        local = [i for i in self.local.get(table.name, ()) if self._checkable(table, i, keys)]
        row = self._fill(table, keys, existing, overrides, pk)
        if not local:
            return row
        for attempt in range(ROW_TRIES):
            fixed = self._fix_implied(table, row, keys, overrides, local)
            if fixed and attempt == 0 and pk is not None:
                self.repaired_rows.add((table.name, pk))
            if all(i.holds(row, None, self.invariants._ctx)[0] for i in local):  # type: ignore[arg-type]
                return row
            if attempt == 0 and pk is not None:
                self.repaired_rows.add((table.name, pk))
            if attempt == 0 and self._repair_local(table, row, keys, overrides, local):
                return row
            if attempt == ROW_TRIES - 1:
                break
            self._release(table, row)
            row = self._fill(table, keys, existing, overrides, pk)
        return row

    def _repair_local(self, table: Table, row: dict[str, Any], keys: dict[str, list], overrides: dict[str, Any],
                      local: list[Invariant]) -> bool:
        """Set the new row's own columns (not ``overrides``) so that its local checks hold, as
        :meth:`_remake` does for a stored row (keeping its status where a check allows); the row is
        changed only if that works and every value still fits its column."""
        ctx = self.invariants._ctx
        rep = _Repairer(_Pool(self.schema, keys), self, ctx, self.rng, table, True, False)
        rep._op_keys = {table.primary_key, *overrides}
        args = dict(row)
        for _ in range(3):
            todo = [i for i in local if i.kind == "stated" and not i.holds(args, None, ctx)[0]]  # type: ignore[arg-type]
            if not todo:
                break
            for inv in todo:
                rep.repair(inv.expr, True, args)
            self._fix_implied(table, args, keys, overrides, local)
        if not all(i.holds(args, None, ctx)[0] for i in local):  # type: ignore[arg-type]
            return False
        changed = [c for c in table.columns if args.get(c.name) != row.get(c.name)]
        if any(c.unique for c in changed) or not _valid(table, None, None, args, self.clock):
            return False
        row.update(args)
        return True

    def _checkable(self, table: Table, inv: Invariant, keys: dict[str, list]) -> bool:
        """An invariant on a reference whose table has no rows yet (a self reference while the
        seed is made) is left to the check of the whole state."""
        from core.spec import expr as X

        for n in X.walk(inv.expr):
            if isinstance(n, X.Param) and table.has_column(n.name):
                col = table.column(n.name)
                if col.type == "ref" and not keys.get(col.table or ""):
                    return False
        return True

    def _fill(self, table: Table, keys: dict[str, list], existing: list[dict] | None,
              overrides: dict[str, Any], pk: Any) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for col in table.columns:
            if col.name == table.primary_key:
                row[col.name] = pk
                continue
            if col.name in overrides:
                row[col.name] = overrides[col.name]
                continue
            if col.unique:
                key = (table.name, col.name)
                taken = self.seen.setdefault(key, set())
                if existing is not None and not taken:
                    taken.update(r[col.name] for r in existing)
                row[col.name] = self.unique_value(table, col, row, keys, taken)
                taken.add(row[col.name])
            else:
                row[col.name] = self.value(table, col, row, keys)
        return row

    def _release(self, table: Table, row: dict[str, Any]) -> None:
        """Give the unique values of a row that is made again back to the pool."""
        for col in table.columns:
            if col.unique and col.name != table.primary_key:
                self.seen.get((table.name, col.name), set()).discard(row.get(col.name))

    def _take(self, table: Table, row: dict[str, Any]) -> None:
        for col in table.columns:
            if col.unique and col.name != table.primary_key and row.get(col.name) is not None:
                self.seen.setdefault((table.name, col.name), set()).add(row[col.name])

    def _fix_implied(self, table: Table, row: dict[str, Any], keys: dict[str, list], overrides: dict[str, Any],
                     invs: list[Invariant]) -> bool:
        """Make the columns a status implies (derived invariants) agree with the row's status;
        returns whether a column changed."""
        changed = False
        for inv in invs:
            if inv.kind != "implies" or row.get(inv.column) != inv.value or inv.other in overrides \
                    or (row.get(inv.other) is None) == inv.null:
                continue
            changed = True
            if inv.null:
                self._release(table, {inv.other: row[inv.other]})
                row[inv.other] = None
                continue
            col = table.column(inv.other).model_copy(update={"nullable": False})
            if col.unique:
                v = self.unique_value(table, col, row, keys, self.seen.setdefault((table.name, col.name), set()))
                if v is not None:
                    self.seen[(table.name, col.name)].add(v)
            else:
                v = self.value(table, col, row, keys)
            row[inv.other] = v
        return changed

    @property
    def repaired(self) -> Counter:
        """table -> how many seed rows broke an invariant when first made (and were repaired)."""
        return Counter(t for t, _ in self.repaired_rows)

    def seed_rows(self, scale: float = 1.0) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {}
        keys: dict[str, list] = {}
        for table in table_order(self.schema):
            pkcol = table.column(table.primary_key)
            n = max(1, round(table.rows * scale))
            out = []
            for i in range(1, n + 1):
                out.append(self.make_row(table, keys, pk=f"{pkcol.prefix}-{i:04d}"))
            rows[table.name] = out
            keys[table.name] = [r[table.primary_key] for r in out]
        # self references: filled once the table's own keys exist
        for table in self.schema.tables:
            for col in table.columns:
                if col.type == "ref" and col.table == table.name:
                    pool = keys[table.name]
                    for r in rows[table.name]:
                        cands = [k for k in pool if k != r[table.primary_key]]
                        r[col.name] = None if (col.nullable and self.rng.random() < 0.5) or not cands \
                            else self.rng.choice(cands)
        out = {t.name: rows[t.name] for t in self.schema.tables}
        if len(self.invariants):
            self._keep_invariants(out, keys)
        return out

    def _keep_invariants(self, rows: dict[str, list[dict[str, Any]]], keys: dict[str, list]) -> None:
        """Check the whole seed state against every invariant and repair the violating rows
        (:meth:`repair`); ``rows`` are changed in place. Raises :class:`SeedError` when violations
        remain."""
        from core.data.db import DomainDB

        db = DomainDB(self.schema)
        try:
            try:
                db.load(rows)
            except sqlite3.IntegrityError:  # e.g. a required self reference in a one-row table:
                return  # rows the database refuses fail where they are loaded, as they always did
            found, rounds = self._repair(db, keys, SEED_ROUNDS, grow=False)
            if found:
                v = found[0]
                by = next(i for i in self.invariants.all if i.table == v.table and i.check == v.check)
                where = by.where if by.index is not None else f"tables.{v.table}"
                rest = f" (and {len(found) - 1} more violation(s))" if len(found) > 1 else ""
                raise SeedError(v.table, where, v.check, v.message,
                                f"row {v.key} still breaks it after {rounds} round(s) of repair"
                                + (f" [{v.reason}]" if v.reason else "") + rest)
            for t in self.schema.tables:  # repairs may have changed rows besides the violating ones
                pk, out = t.primary_key, rows[t.name]
                for i, r in enumerate(out):
                    now = db.get(t.name, r[pk])
                    if now != r:
                        out[i] = now
                        self.repaired_rows.add((t.name, r[pk]))
        finally:
            db.close()

    def repair(self, db: Any, rounds: int = 3, grow: bool = True, keep: Callable[[], bool] | None = None,
               changed_only: bool = False) -> list:
        """Repair the rows of ``db`` that break an invariant, as the seed is repaired (:meth:`_remake`);
        with ``grow``, a count may also be raised by adding rows; a repair after which ``keep()``
        is false is undone; ``changed_only``: look only at what the writes since ``db.mark()`` can
        have broken (the undo log ``db.before`` is kept up to date). Returns the violations left."""
        return self._repair(db, {t.name: db.keys(t.name) for t in self.schema.tables}, rounds, grow, keep,
                            changed_only)[0]

    def _repair(self, db: Any, keys: dict[str, list], max_rounds: int, grow: bool,
                keep: Callable[[], bool] | None = None, changed_only: bool = False) -> tuple[list, int]:
        """Rounds of :meth:`_remake` over the violating rows, until none is left, a round repairs
        no row, or ``max_rounds``; returns the violations left and the rounds run."""
        inv = self.invariants
        found = inv.violations(db, inv._ctx, changed_only=changed_only)
        rounds = 0
        while found and rounds < max_rounds:
            rounds += 1
            broken: dict[tuple[str, Any], list[Invariant]] = {}
            for v in found:
                broken.setdefault((v.table, v.key), []).extend(i for i in inv.by_table[v.table] if i.check == v.check)
            progress = False
            for (table_name, key), invs in broken.items():
                progress = self._remake(db, self.schema.table(table_name), key, keys, invs, grow, keep) or progress
            found = inv.violations(db, inv._ctx, changed_only=changed_only)
            if not progress:  # no row could be repaired: another round is futile
                break
        return found, rounds

    def _remake(self, db: Any, table: Table, key: Any, keys: dict[str, list], broken: list[Invariant],
                grow: bool = False, keep: Callable[[], bool] | None = None) -> bool:
        """:meth:`_remake_row`, keeping the database's undo log (``db.before``) as it would be had
        the repair been written directly: the pre-images from before the repair win."""
        outer = {t: dict(p) for t, p in db.before.items()}
        db.mark()
        try:
            return self._remake_row(db, table, key, keys, broken, grow, keep)
        finally:
            for t, pre in outer.items():
                db.before.setdefault(t, {}).update(pre)

    def _remake_row(self, db: Any, table: Table, key: Any, keys: dict[str, list], broken: list[Invariant],
                    grow: bool = False, keep: Callable[[], bool] | None = None) -> bool:
        """Repair a stored row that breaks the invariants ``broken``, trying in turn: the columns
        its status implies; the row's own columns set so that each broken check holds (the
        state builder's repairs, :mod:`core.synthesis.arrange`); the same, also changing the other rows the
        check reads (never deleting one, and adding one only with ``grow``); the whole row made
        again. The first version that keeps every invariant of the row's table (and ``keep()``),
        with every changed row still valid for its columns, is kept. Returns whether it was."""
        from core.data.db import IntegrityError

        old = db.get(table.name, key)
        if old is None:
            return False
        invs = self.invariants.by_table.get(table.name, [])
        ctx = self.invariants._ctx
        start = db.snapshot()
        seen0 = {k: set(v) for k, v in self.seen.items()}

        def holds() -> bool:
            cur = db.get(table.name, key)
            if not all(i.holds(cur, db, ctx)[0] for i in invs) or (keep is not None and not keep()):
                return False
            return all(_valid(self.schema.table(t), db, k, r, self.clock) for t, pre in db.before.items()
                       for k in pre if (r := db.get(t, k)) is not None)

        def write(row: dict[str, Any]) -> bool:
            try:
                db.update(table.name, key, {c: v for c, v in row.items() if c != table.primary_key})
            except IntegrityError:
                return False
            return True

        def undo() -> None:
            db.restore(start)
            self.seen = {k: set(v) for k, v in seen0.items()}

        db.mark()
        fixed = dict(old)
        self._fix_implied(table, fixed, keys, {}, invs)
        if fixed != old and write(fixed) and holds():
            return True
        undo()
        for own_only in (True, False):
            for _ in range(3):
                rep = _Repairer(db, self, ctx, self.rng, table, own_only, grow)
                if keep is not None:
                    rep.keep = lambda a, k=keep: write(a) and k()
                args = dict(old)
                done = False
                todo = [i for i in broken if i.kind == "stated"]
                for _ in range(3):  # a repair may break another check of the row: repair that one too
                    for inv in todo:
                        done = rep.repair(inv.expr, True, args) or done
                    done = self._fix_implied(table, args, keys, {}, invs) or done
                    todo = [i for i in invs if i.kind == "stated" and not i.holds(args, db, ctx)[0]]
                    if not todo:
                        break
                if done and write(args) and holds():
                    return True
                undo()
        selfref = {c.name: old[c.name] for c in table.columns if c.type == "ref" and c.table == table.name}
        self._release(table, old)
        for _ in range(REGENERATE):
            cand = {**self.make_row(table, keys, pk=None), table.primary_key: key, **selfref}
            if write(cand) and holds():
                return True
            self._release(table, cand)
            db.restore(start)
        undo()
        return False


def _valid(table: Table, db: Any, key: Any, row: dict[str, Any], clock: datetime) -> bool:
    """A row the seed could have made: types, bounds (dates too), enum values, uniqueness."""
    for col in table.columns:
        v = row.get(col.name)
        if v is None:
            if not col.nullable and col.name != table.primary_key:
                return False
            continue
        if col.type == "enum" and v not in col.values:
            return False
        if col.type in ("int", "money", "float"):
            if isinstance(v, bool) or not isinstance(v, int | float) or not col.min <= v <= col.max:
                return False
        if col.type == "date" and col.min is not None and col.max is not None:
            lo, hi = (clock.date() + timedelta(days=int(b)) for b in (col.min, col.max))
            if not isinstance(v, str) or not lo.isoformat() <= v <= hi.isoformat():
                return False
        if col.type == "datetime" and col.min is not None and col.max is not None:
            lo, hi = (clock + timedelta(seconds=int(b * 86400)) for b in (col.min, col.max))
            if not isinstance(v, str) or not lo.isoformat() <= v <= hi.isoformat():
                return False
        if col.unique and col.name != table.primary_key and db is not None and db.count(table.name, **{col.name: v}) > 1:
            return False
    return True


class _Pool:
    """What the repairs of a row not yet stored read of the database: the keys of each table."""

    def __init__(self, schema: DomainSchema, keys: dict[str, list]):
        self.schema, self._keys = schema, keys

    def keys(self, table: str, **filters: Any) -> list:
        return list(self._keys.get(table, [])) if not filters else []

    def get(self, table: str, key: Any) -> None:
        return None

    def snapshot(self) -> None:
        return None

    def restore(self, data: Any) -> None:
        pass

    before: dict = {}


def _repairer_class() -> type:
    from core.synthesis.arrange import Arranger  # core.synthesis.arrange imports this module

    class Repairer(Arranger):
        """The state builder's repairs, pointed at one row of a table: the row's columns are the
        arguments (``Param``); with ``own_only`` nothing else changes, otherwise other rows may
        change too, but no row is deleted, and one is added only with ``grow``."""

        def __init__(self, db: Any, factory: RowFactory, ctx: Any, rng: random.Random, table: Table,
                     own_only: bool, grow: bool = False):
            from core.spec.blueprint import invariant_scope

            super().__init__(db, factory, ctx, rng)
            self.own_only, self.grow, self.table = own_only, grow, table
            self.keep: Callable[[dict], bool] | None = None  # must stay true (given the row's new values)
            self._params = list(invariant_scope(factory.schema, table).params.values())
            self._op_keys = {table.primary_key}
            self._fresh: set[str] = set()

        def repair(self, e: Any, want: bool, args: dict, force: bool = False) -> bool:
            """As the state builder's, but each way of making an ``or`` true is tried in turn until
            one works (and leaves ``keep`` true): first, in random order, the ways that leave the
            row's enum columns (its status) as they are, then the others, so that a repair does not
            simply move every row out of the status a check is about."""
            from core.spec import expr as X

            if not (isinstance(e, X.BoolOp) and (e.op == "or") == want):
                return super().repair(e, want, args, force)
            order = list(e.values)
            self.rng.shuffle(order)
            order.sort(key=self._on_enum)
            for v in order:
                snap, before, saved = self.db.snapshot(), {t: dict(p) for t, p in self.db.before.items()}, dict(args)
                if super().repair(v, want, args, force) and (self.keep is None or self.keep(args)):
                    return True
                self.db.restore(snap)
                self.db.before = before
                args.clear()
                args.update(saved)
            return False

        def _on_enum(self, e: Any) -> bool:
            """Does ``e`` read one of the row's own enum columns?"""
            from core.spec import expr as X

            return any(isinstance(n, X.Param) and self.table.has_column(n.name)
                       and self.table.column(n.name).type == "enum" for n in X.walk(e))

        def _domain_of(self, e: Any, args: dict) -> list[Any]:
            from core.spec import expr as X

            if isinstance(e, X.Param) and self.table.has_column(e.name):  # a column of the row
                return self._column_domain(self.table.column(e.name), limit=None)
            return super()._domain_of(e, args)

        def _settable(self, e: Any, args: dict) -> bool:
            from core.spec import expr as X

            if self.own_only and not isinstance(e, X.Param):
                return False
            return super()._settable(e, args)

        def _set_field(self, f: Any, value: Any, args: dict) -> bool:
            return False if self.own_only else super()._set_field(f, value, args)

        def _count_to(self, agg: Any, n: int, args: dict) -> bool:
            if self.own_only:
                return False
            from core.runtime.context import NotFound

            try:
                filters = {c: self._eval(v, args) for c, v in agg.filters}
            except (NotFound, TypeError, KeyError):
                return False
            if not self.grow and len(self.db.keys(agg.table, **filters)) < n:
                return False  # the seed keeps its row counts: nothing is added
            return super()._count_to(agg, n, args)

        def _unmatch(self, table: Any, key: Any, filters: dict) -> bool:
            snap = self.db.count(table.name)
            done = super()._unmatch(table, key, filters)
            return done and self.db.count(table.name) == snap  # a delete makes the repair fail

        def _eval(self, e: Any, args: dict) -> Any:
            from core.spec.interp import Evaluator

            return Evaluator(self.db, self.ctx, args).eval(e)

    return Repairer


class _LazyRepairer:
    cls: type | None = None

    def __call__(self, *a: Any) -> Any:
        if self.cls is None:
            self.cls = _repairer_class()
        return self.cls(*a)


_Repairer = _LazyRepairer()
