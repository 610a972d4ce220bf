"""Shared fixtures: the bike_rental blueprint, one synthesis of it per session, a seeded database."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIKE = ROOT / "sample_domains" / "bike_rental.yaml"

if str(ROOT) not in sys.path:  # running pytest without installing the project
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def bike_path() -> Path:
    return BIKE


@pytest.fixture(scope="session")
def bike_bp():
    from core.blueprint import load_blueprint

    return load_blueprint(BIKE)


@pytest.fixture(scope="session")
def bike_domain(bike_bp):
    """bike_rental synthesized once per session (seed 0), in-process."""
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
def bike_env(bike_bp):
    from core.context import ToolContext
    from core.db import DomainDB
    from core.seed import RowFactory

    factory = RowFactory(bike_bp.schema, 0)
    db = DomainDB(bike_bp.schema)
    db.load(factory.seed_rows())
    env = SeededEnv(bike_bp, db, db.snapshot(), factory, ToolContext(bike_bp.schema.clock))
    yield env
    db.close()


@pytest.fixture
def env(bike_env):
    """The module's seeded bike_rental database, restored to its seed state for each test."""
    bike_env.fresh()
    return bike_env
