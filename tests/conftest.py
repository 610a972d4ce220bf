"""Shared fixtures: the bike_rental blueprint, one synthesis of it per session, seeded databases.

There is one way to build a seeded database: the ``seeded_db`` factory fixture, which does what
synthesis does (``RowFactory(schema, seed).seed_rows()`` loaded into a new ``DomainDB``).
"""

from __future__ import annotations

import copy
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIKE = ROOT / "sample_domains" / "bike_rental.yaml"

if str(ROOT) not in sys.path:  # running pytest without installing the project
    sys.path.insert(0, str(ROOT))


class Seeder:
    """``seeded_db(schema, seed=0)``: a new DomainDB holding the domain's seed rows.

    - ``seeded_db.rows(schema, seed=0)``: those rows (a fresh copy; made once per schema and seed);
    - ``seeded_db.factory(schema, seed=0)``: a new ``RowFactory`` that has just made them, in the
      state synthesis continues from (so cases and arranged rows come out as in synthesis).

    Databases it makes are closed at the end of the session (closing one earlier is fine).
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[int, int], tuple[Any, dict[str, list[dict[str, Any]]]]] = {}
        self._made: list[Any] = []

    def factory(self, schema, seed: int = 0):
        from core.seed import RowFactory

        factory = RowFactory(schema, seed)
        rows = factory.seed_rows()
        self._rows.setdefault((id(schema), seed), (schema, rows))  # the schema is held, so its id stays its own
        return factory

    def rows(self, schema, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
        hit = self._rows.get((id(schema), seed))
        if hit is None:
            self.factory(schema, seed)
            hit = self._rows[(id(schema), seed)]
        return copy.deepcopy(hit[1])

    def __call__(self, schema, seed: int = 0):
        from core.db import DomainDB

        db = DomainDB(schema)
        db.load(self.rows(schema, seed))
        self._made.append(db)
        return db

    def close(self) -> None:
        for db in self._made:
            db.close()
        self._made.clear()


@pytest.fixture(scope="session")
def seeded_db():
    """Factory of seeded databases: ``seeded_db(schema, seed=0)``; see :class:`Seeder`."""
    seeder = Seeder()
    yield seeder
    seeder.close()


class PlainSQL:
    """Reads a domain database with plain SQL on a second sqlite3 connection.

    An oracle independent of ``DomainDB``'s own reads: the state is copied out with
    ``snapshot()`` (SQLite's serialize) into a new connection and queried with hand-written SQL.
    A source is a ``DomainDB`` (or anything with ``.db``, such as an ``Environment``), or snapshot
    bytes. Booleans come back as SQLite stores them (0/1), which ``==`` equates with False/True.
    """

    def connect(self, source) -> sqlite3.Connection:
        source = getattr(source, "db", source)
        data = source if isinstance(source, bytes | bytearray) else source.snapshot()
        conn = sqlite3.connect(":memory:")
        conn.deserialize(data)
        conn.row_factory = sqlite3.Row
        return conn

    @staticmethod
    def _pk(conn: sqlite3.Connection, table: str) -> str:
        return next(r["name"] for r in conn.execute(f'PRAGMA table_info("{table}")') if r["pk"])

    def rows(self, source, table: str) -> list[dict[str, Any]]:
        """Every row of ``table``, ordered by its primary key."""
        conn = self.connect(source)
        try:
            pk = self._pk(conn, table)
            return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY "{pk}"')]
        finally:
            conn.close()

    def row(self, source, table: str, key) -> dict[str, Any] | None:
        conn = self.connect(source)
        try:
            r = conn.execute(f'SELECT * FROM "{table}" WHERE "{self._pk(conn, table)}" = ?', (key,)).fetchone()
            return None if r is None else dict(r)
        finally:
            conn.close()

    def state(self, source) -> dict[str, list[dict[str, Any]]]:
        """Every domain table (not the id counters) -> its rows by primary key."""
        conn = self.connect(source)
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                 "AND name != '_counters' ORDER BY name")]
            return {t: [dict(r) for r in conn.execute(f'SELECT * FROM "{t}" ORDER BY "{self._pk(conn, t)}"')]
                    for t in names}
        finally:
            conn.close()

    def query(self, source, sql: str, args: tuple | list = ()) -> list[tuple]:
        conn = self.connect(source)
        try:
            return [tuple(r) for r in conn.execute(sql, args)]
        finally:
            conn.close()


@pytest.fixture(scope="session")
def sql() -> PlainSQL:
    """Plain-SQL reads of a DomainDB on a second connection; see :class:`PlainSQL`."""
    return PlainSQL()


@pytest.fixture(scope="session")
def bike_path() -> Path:
    return BIKE


@pytest.fixture(scope="session")
def bike_bp():
    from core.blueprint import load_blueprint

    return load_blueprint(BIKE)


@pytest.fixture(scope="session")
def bike_domain(bike_bp):
    """bike_rental synthesized once per session (seed 0), in-process. Shared: copy it before changing it
    (``bike_domain.model_copy(deep=True)``)."""
    from core.synth import SynthOptions, synthesize

    return synthesize(bike_bp, SynthOptions(seed=0))


@dataclass
class SeededEnv:
    """What the synthesis pipeline prepares before testing tools: rows, a database, its snapshot, a clock."""

    bp: object
    db: object
    base: bytes
    factory: object
    ctx: object

    def fresh(self) -> None:
        self.db.restore(self.base)


@pytest.fixture(scope="module")
def bike_env(bike_bp, seeded_db):
    from core.context import ToolContext

    db = seeded_db(bike_bp.schema)
    env = SeededEnv(bike_bp, db, db.snapshot(), seeded_db.factory(bike_bp.schema), ToolContext(bike_bp.schema.clock))
    yield env
    db.close()


@pytest.fixture
def env(bike_env):
    """The module's seeded bike_rental database, restored to its seed state for each test."""
    bike_env.fresh()
    return bike_env
