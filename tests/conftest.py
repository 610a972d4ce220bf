"""Shared fixtures: the bike_rental blueprint, one synthesis of it per session, seeded databases.

There is one way to build a seeded database: the ``seeded_db`` factory fixture, which does what
synthesis does (``RowFactory(schema, seed).seed_rows()`` loaded into a new ``DomainDB``).
"""

from __future__ import annotations

import copy
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
        from core.data.seed import RowFactory

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
        from core.data.db import DomainDB

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
    """Reads a domain database with hand-written SQL: an oracle independent of ``DomainDB``'s reads.

    A source is a ``DomainDB`` (or anything with ``.db``, such as an ``Environment``) or snapshot
    bytes. Bytes, and a database with no open transaction, are copied into a *second* sqlite3
    connection (``snapshot()`` then ``deserialize``). A database inside an open transaction (an
    ``Environment`` mid-episode) is read on its own connection through a separate cursor, because
    ``serialize()`` of a deserialized database leaves out uncommitted writes (see test_db.py).
    Booleans come back as SQLite stores them (0/1), which ``==`` equates with False/True.
    """

    @contextmanager
    def cursor(self, source) -> Iterator[sqlite3.Cursor]:
        source = getattr(source, "db", source)
        own = None if isinstance(source, bytes | bytearray) else source.conn
        if own is not None and own.in_transaction:
            cur = own.cursor()
            cur.row_factory = sqlite3.Row
            yield cur
            return
        conn = sqlite3.connect(":memory:")
        try:
            conn.deserialize(source if own is None else source.snapshot())
            cur = conn.cursor()
            cur.row_factory = sqlite3.Row
            yield cur
        finally:
            conn.close()

    def connect(self, source) -> sqlite3.Connection:
        """A second connection holding a copy of the source (rows as ``sqlite3.Row``)."""
        source = getattr(source, "db", source)
        conn = sqlite3.connect(":memory:")
        conn.deserialize(source if isinstance(source, bytes | bytearray) else source.snapshot())
        conn.row_factory = sqlite3.Row
        return conn

    @staticmethod
    def _pk(cur: sqlite3.Cursor, table: str) -> str:
        return next(r["name"] for r in cur.execute(f'PRAGMA table_info("{table}")').fetchall() if r["pk"])

    def rows(self, source, table: str) -> list[dict[str, Any]]:
        """Every row of ``table``, ordered by its primary key."""
        with self.cursor(source) as cur:
            pk = self._pk(cur, table)
            return [dict(r) for r in cur.execute(f'SELECT * FROM "{table}" ORDER BY "{pk}"').fetchall()]

    def row(self, source, table: str, key) -> dict[str, Any] | None:
        with self.cursor(source) as cur:
            r = cur.execute(f'SELECT * FROM "{table}" WHERE "{self._pk(cur, table)}" = ?', (key,)).fetchone()
            return None if r is None else dict(r)

    def state(self, source) -> dict[str, list[dict[str, Any]]]:
        """Every domain table (not the id counters) -> its rows by primary key."""
        with self.cursor(source) as cur:
            names = [r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name != '_counters' ORDER BY name").fetchall()]
            return {t: [dict(r) for r in cur.execute(f'SELECT * FROM "{t}" ORDER BY "{self._pk(cur, t)}"').fetchall()]
                    for t in names}

    def query(self, source, sql: str, args: tuple | list = ()) -> list[tuple]:
        with self.cursor(source) as cur:
            return [tuple(r) for r in cur.execute(sql, args).fetchall()]


@pytest.fixture(scope="session")
def sql() -> PlainSQL:
    """Plain-SQL reads of a DomainDB on a second connection; see :class:`PlainSQL`."""
    return PlainSQL()


@pytest.fixture(scope="session")
def bike_path() -> Path:
    return BIKE


@pytest.fixture(scope="session")
def bike_bp():
    from core.spec.blueprint import load_blueprint

    return load_blueprint(BIKE)


@pytest.fixture(scope="session")
def bike_domain(bike_bp):
    """bike_rental synthesized once per session (seed 0), in-process. Shared: copy it before changing it
    (``bike_domain.model_copy(deep=True)``)."""
    from core.synthesis.synth import SynthOptions, synthesize

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
    from core.runtime.context import ToolContext

    db = seeded_db(bike_bp.schema)
    env = SeededEnv(bike_bp, db, db.snapshot(), seeded_db.factory(bike_bp.schema), ToolContext(bike_bp.schema.clock))
    yield env
    db.close()


@pytest.fixture
def env(bike_env):
    """The module's seeded bike_rental database, restored to its seed state for each test."""
    bike_env.fresh()
    return bike_env


def pytest_make_parametrize_id(config, val, argname):
    """Readable ids for source-code and regex parameters: no backslash escapes, which a test id
    must not hold to be selected again by name (mutmut re-runs tests by id)."""
    if isinstance(val, str) and ("\n" in val or "\\" in val):
        return val.replace("\n", " | ").replace("\\", "")
    return None


@pytest.fixture(autouse=True)
def _fresh_claim_rules():
    """Each test compiles its own claim rules: no test passes on rules another test compiled (and
    mutation runs, which fork from a process that already ran the suite, reach the code)."""
    from core.evaluation import claims

    claims.claim_rules.cache_clear()
    claims._refusal.cache_clear()
