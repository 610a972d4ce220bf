"""Property tests: schema-shaped and malformed arguments thrown at every tool of every sample domain.

Calls go through ``Environment.step``, the path agents use. Whatever the arguments, a step returns
an outcome and never raises; a result has the shape the tool declares (a ``row`` is the stored
row as it is after the call), and is JSON; a read tool changes nothing; the undo log records a
change exactly when the state hash moves; a failed call carries a kind and a message and leaves the
state exactly as it was. Each example makes one call with valid arguments (drawn from the stored
values, so most tools succeed at least once) and one with anything at all. Runs are derandomized,
so a failure reproduces.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.data.models import Domain, Implementation, Provenance, ToolRecord
from core.data.taskmodel import GroundTruth, Scenario, StateDelta, Task
from core.evaluation.reward import Expected
from core.runtime.env import DomainRuntime, Environment
from core.spec.blueprint import load_blueprint
from core.synthesis.codegen import compile_operation

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "sample_domains").glob("*.yaml"))
DOMAINS = {p.stem: p for p in SAMPLES}
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=30), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
FAILURES = {"invalid_argument", "not_found", "precondition"}  # compiled tools never crash or time out


class Loaded:
    """One sample domain served as trainers serve it: its compiled tools in a DomainRuntime, one Environment."""

    def __init__(self, path: Path, seeded_db):
        bp = load_blueprint(path)
        self.schema = bp.schema
        rows = seeded_db.rows(bp.schema)
        tools = [ToolRecord(spec=op.spec, implementation=Implementation(tool=op.name, source=compile_operation(
            op, bp.schema))) for op in bp.operations]
        domain = Domain(domain=bp.schema, rows=rows, tools=tools, edges=[], provenance=Provenance())
        self.runtime = DomainRuntime(domain)
        assert not self.runtime.refused
        task = Task(id=f"{bp.name}-props", domain=bp.name, chain=[], initial=StateDelta(),
                    scenario=Scenario(persona="", goal="", instruction=""),
                    ground_truth=GroundTruth(final_hash="", expected=Expected(), communicate=[]))
        self.env = Environment(self.runtime, task)
        self.seed_hash = self.env.state_hash()  # every check starts from a reset to this state
        self._strategies: dict[str, tuple[st.SearchStrategy, st.SearchStrategy]] = {}
        self.ops = {op.name: op for op in bp.operations}
        # the values stored in each column ("table.column"), so ids and unique fields name real rows
        self.stored_values = {f"{t.name}.{c.name}": sorted({r[c.name] for r in rows[t.name]} - {None}, key=repr)
                              for t in bp.schema.tables for c in t.columns}
        self.keyed = {f"{t.name}.{c.name}" for t in bp.schema.tables for c in t.columns if c.type in ("id", "ref")}

    def good(self, spec: dict, column: str | None) -> st.SearchStrategy:
        """Values the schema accepts, from the stored ones when the parameter carries a column."""
        t = spec.get("type")
        if "enum" in spec:
            return st.sampled_from(spec["enum"])
        if t == "integer":
            return st.integers(int(spec.get("minimum", -10)), int(spec.get("maximum", 10)))
        if t == "number":
            return st.floats(spec.get("minimum", -10), spec.get("maximum", 10), allow_nan=False)
        if t == "boolean":
            return st.booleans()
        if spec.get("format") == "date":
            return st.dates().map(lambda d: d.isoformat())
        stored = [v for v in self.stored_values.get(column or "", []) if isinstance(v, str)]
        if not stored:
            return st.text(max_size=20)
        if column in self.keyed:
            return st.sampled_from(stored)
        return st.one_of(st.sampled_from(stored), st.text(min_size=1, max_size=20))  # a new name, email, ...

    def arguments(self, tool: str) -> tuple[st.SearchStrategy, st.SearchStrategy]:
        """Arguments the schema accepts (from stored values), and anything at all (shaped, junk, JSON text)."""
        if tool not in self._strategies:
            self._strategies[tool] = self._arguments(tool)
        return self._strategies[tool]

    def _arguments(self, tool: str) -> tuple[st.SearchStrategy, st.SearchStrategy]:
        op = self.ops[tool]
        cols = {p.name: p.column for p in op.spec.params}
        props = op.spec.parameters["properties"]
        valid = st.fixed_dictionaries({k: self.good(s, cols.get(k)) for k, s in props.items()})
        shaped = st.fixed_dictionaries(
            {k: st.one_of(self.good(s, cols.get(k)), st.text(max_size=20), JUNK) for k, s in props.items()},
            optional={"unexpected": JUNK},
        )
        return valid, st.one_of(shaped, JUNK, valid.map(json.dumps), shaped.map(json.dumps))

    def stored(self, table: str, row: object) -> dict | None:
        """The row of ``table`` with ``row``'s primary key, read with plain SQL on the episode's connection."""
        pk = self.schema.table(table).primary_key
        cur = self.env.db.conn.cursor()
        cur.execute(f'SELECT * FROM "{table}" WHERE "{pk}" = ?', (row[pk],))  # type: ignore[index]
        tup = cur.fetchone()
        return None if tup is None else dict(zip([d[0] for d in cur.description], tup, strict=True))


def shape_problems(loaded: Loaded, tool: str, result: object) -> list[str]:
    """How ``result`` departs from the tool's declared return shape (nothing: it fits)."""
    shape = loaded.ops[tool].spec.returns
    if shape.kind == "object":
        return [] if isinstance(result, dict) and set(result) == set(shape.fields) else [f"fields {result!r}"]
    rows = [result] if shape.kind == "row" else result
    if not isinstance(rows, list):
        return [f"not a list of rows: {result!r}"]
    columns = {c.name for c in loaded.schema.table(shape.table).columns}
    problems = [f"not a {shape.table} row: {r!r}" for r in rows if not isinstance(r, dict) or set(r) != columns]
    return problems or [f"{r!r} is not what is stored" for r in rows if loaded.stored(shape.table, r) != r]


def _tool_ids() -> list[tuple[str, str]]:
    """Every (domain, tool) pair of the sample domains, so no tool is left to chance."""
    return [(d, op.name) for d in sorted(DOMAINS) for op in load_blueprint(DOMAINS[d]).operations]


@pytest.fixture(scope="module")
def samples(seeded_db):
    """``samples(domain)``: the Loaded domain; the last two are kept (tests run grouped by domain)."""
    cache: dict[str, Loaded] = {}

    def get(domain: str) -> Loaded:
        if domain not in cache:
            if len(cache) >= 2:
                cache.pop(next(iter(cache))).env.close()
            cache[domain] = Loaded(DOMAINS[domain], seeded_db)
        return cache[domain]

    return get


def check_step(loaded: Loaded, tool: str, args: object) -> None:
    """One call from a fresh episode, and every promise it must keep."""
    env = loaded.env
    env.reset()
    out = env.step({"name": tool, "arguments": args})
    after = env.state_hash()
    ok = out["ok"]
    event("ok" if ok else out["error"]["kind"])  # --hypothesis-show-statistics: how often each path runs
    assert set(out) == ({"ok", "result"} if ok else {"ok", "error"}), out
    assert [{k: v for k, v in c.items() if k != "arguments"} for c in env.calls] == [{"name": tool, **out}]
    json.dumps(out)  # what an agent reads is JSON
    # the undo log (what rewards and diffs read) sees exactly the changes the tables show
    assert (after != loaded.seed_hash) == bool(env.db.changes())
    # a success: the declared shape, and a read changes nothing
    assert not ok or shape_problems(loaded, tool, out["result"]) == []
    assert not ok or loaded.ops[tool].spec.kind == "write" or after == loaded.seed_hash
    # a failure: a kind an agent can act on, a message, and the state as it was
    assert ok or out["error"]["kind"] in FAILURES, out
    assert ok or (isinstance(out["error"]["message"], str) and out["error"]["message"])
    assert ok or after == loaded.seed_hash


@pytest.mark.parametrize("domain,tool", _tool_ids(), ids=lambda x: x)
@settings(max_examples=10, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_steps_never_raise_results_fit_their_shape_and_errors_change_nothing(samples, domain, tool, data):
    loaded = samples(domain)
    valid, anything = loaded.arguments(tool)
    check_step(loaded, tool, data.draw(valid, label="valid arguments"))
    check_step(loaded, tool, data.draw(anything, label="any arguments"))
