"""Seed data: realistic rows for a domain's tables, reproducible from a seed.

Names, emails, phones, addresses and free text come from Faker (seeded per domain); numbers,
enums, dates and references from a ``random.Random`` with the same seed. Same seed, same rows.
Unique columns stay unique, references point at existing rows, numbers stay in their bounds.
"""

from __future__ import annotations

import random
import re
import zlib
from datetime import datetime, timedelta
from typing import Any

import networkx as nx
from faker import Faker

from core.models import Column, DomainSchema, Table

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

    def __init__(self, schema: DomainSchema, seed: int):
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
        """A new row for ``table``; ``existing`` rows are used to keep unique columns unique."""
        overrides = overrides or {}
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
        return {t.name: rows[t.name] for t in self.schema.tables}
