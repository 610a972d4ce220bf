"""Property tests: schema-shaped and malformed arguments thrown at every tool of every sample domain.

Whatever the arguments, a call returns an outcome (never raises), errors carry a kind and a
message, and after an error the database is exactly as it was.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.blueprint import load_blueprint
from core.codegen import compile_operation
from core.context import ToolContext
from core.db import DomainDB
from core.invoke import ArgValidator, invoke
from core.sandbox import load_tool
from core.seed import RowFactory

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "sample_domains").glob("*.yaml"))
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=30), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


class Loaded:
    def __init__(self, path: Path):
        bp = load_blueprint(path)
        self.schema = bp.schema
        self.db = DomainDB(bp.schema)
        self.db.load(RowFactory(bp.schema, 0).seed_rows())
        self.ctx = ToolContext(bp.schema.clock)
        self.tools = [(op, load_tool(compile_operation(op, bp.schema), op.name), ArgValidator(op.spec.parameters))
                      for op in bp.operations]
        self.keys = {t.name: self.db.keys(t.name) for t in bp.schema.tables}

    def value(self, spec: dict, column: str | None) -> st.SearchStrategy:
        t = spec.get("type")
        if "enum" in spec:
            good = st.sampled_from(spec["enum"])
        elif t == "integer":
            good = st.integers(int(spec.get("minimum", -10)), int(spec.get("maximum", 10)))
        elif t == "number":
            good = st.floats(spec.get("minimum", -10), spec.get("maximum", 10), allow_nan=False)
        elif t == "boolean":
            good = st.booleans()
        elif spec.get("format") == "date":
            good = st.dates().map(lambda d: d.isoformat())
        else:
            table = column.split(".")[0] if column else None
            keys = self.keys.get(table or "", [])
            good = st.sampled_from(keys) if keys else st.text(max_size=20)
            good = st.one_of(good, st.text(max_size=20))
        return st.one_of(good, good, good, JUNK)


DOMAINS = {p.stem: p for p in SAMPLES}


@functools.lru_cache(maxsize=2)
def loaded(domain: str) -> Loaded:
    return Loaded(DOMAINS[domain])


def _tool_ids() -> list[tuple[str, str]]:
    """Every (domain, tool) pair of the sample domains, so no tool is left to chance."""
    from core.blueprint import load_blueprint

    return [(d, op.name) for d in sorted(DOMAINS) for op in load_blueprint(DOMAINS[d]).operations]


@pytest.mark.parametrize("domain,tool", _tool_ids(), ids=lambda x: x)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tools_never_crash_and_errors_leave_state_unchanged(domain, tool, data):
    env = loaded(domain)
    op, fn, validate = next(t for t in env.tools if t[0].name == tool)
    cols = {p.name: p.column for p in op.spec.params}
    props = op.spec.parameters["properties"]
    shaped = st.fixed_dictionaries(
        {k: env.value(s, cols.get(k)) for k, s in props.items()},
        optional={"unexpected": JUNK},
    )
    args = data.draw(st.one_of(shaped, shaped, shaped, JUNK), label="arguments")
    db = env.db
    before = db.state_hash()
    db.conn.execute("BEGIN")
    try:
        out = invoke(fn, validate, db, env.ctx, args, seconds=2.0)
        if not out.ok:
            assert out.error["kind"] in {"invalid_argument", "not_found", "precondition"}, out.error
            assert out.error["message"]
            assert db.state_hash() == before
    finally:
        db.conn.execute("ROLLBACK")
    assert db.state_hash() == before
