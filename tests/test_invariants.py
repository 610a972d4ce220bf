"""Consistent states (core/data/invariants.py): stated and derived invariants, the check of a state,
seed rows that keep them, and procedural tests that reject a tool breaking one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.data.db import DomainDB
from core.data.invariants import Invariants, Violation
from core.data.seed import RowFactory
from core.runtime.context import ToolContext
from core.spec.blueprint import BlueprintError, load_blueprint, parse_blueprint
from core.synthesis.synth import SynthOptions, synthesize

SHED = Path(__file__).parent / "blueprints" / "tool_shed.yaml"
TEXT = SHED.read_text()


@pytest.fixture(scope="module")
def bp():
    return load_blueprint(SHED)


@pytest.fixture(scope="module")
def inv(bp):
    return Invariants(bp)


@pytest.fixture
def db(bp, inv):
    d = DomainDB(bp.schema)
    d.load(RowFactory(bp.schema, 0, inv).seed_rows())
    yield d
    d.close()


@pytest.fixture(scope="module")
def ctx(bp):
    return ToolContext(bp.schema.clock)


def _with_ops(extra: str, text: str = TEXT) -> str:
    """The blueprint with more operations appended."""
    return text.rstrip() + "\n" + extra


def _implications(inv: Invariants) -> set[str]:
    return {i.check for i in inv.derived if i.kind == "implies"}


# ---------------------------------------------------------------- the check of a state


def test_a_violating_row_is_reported_with_table_key_and_check(db, inv, ctx):
    assert inv.violations(db, ctx) == []
    lent = db.select("tools", status="lent")[0]["tool_id"]
    db.update("tools", lent, {"holder_id": None})
    got = inv.violations(db, ctx)
    assert got == [Violation("tools", lent, "status != 'lent' or holder_id != null", "a lent tool has a holder")]
    assert str(got[0]) == f"tools {lent}: status != 'lent' or holder_id != null (a lent tool has a holder)"
    assert not got[0].derived and inv.consistent(db, ctx) is False


def test_a_cross_table_invariant_is_checked_on_the_rows_it_reads(db, inv, ctx):
    loan = db.select("loans", status="open")[0]
    db.update("tools", loan["tool_id"], {"status": "available", "holder_id": None})
    got = {(v.table, v.key, v.check) for v in inv.violations(db, ctx)}
    assert got == {("loans", loan["loan_id"], "status != 'open' or tools[tool_id].status == 'lent'")}


def test_an_evaluation_error_is_a_violation_with_its_reason_never_an_exception(db, inv, ctx):
    loan = db.select("loans", status="open")[0]
    db.delete("tools", loan["tool_id"])
    got = {(v.check, v.reason) for v in inv.violations(db, ctx) if v.key == loan["loan_id"]}
    assert ("status != 'open' or tools[tool_id].status == 'lent'",
            f"NotFound: no tools record with id {loan['tool_id']!r}") in got
    assert ("derived: loans.tool_id is null or names an existing tools row",
            f"no tools row {loan['tool_id']!r}") in got
    careless = Invariants(parse_blueprint(TEXT.replace("check: due_on >= started_on", "check: returned_on >= started_on")))
    got = careless.violations(db, ctx, tables=["loans"])  # null compared with a date: an error, so a violation
    empty = {r["loan_id"] for r in db.select("loans", returned_on=None)}
    assert {v.key for v in got if v.check == "returned_on >= started_on"} >= empty
    assert all("TypeError" in v.reason for v in got if v.key in empty and v.check == "returned_on >= started_on")


def test_tables_keys_and_limit_narrow_the_check(db, inv, ctx):
    lent = [r["tool_id"] for r in db.select("tools", status="broken")][:2]  # a holder without a loan
    member = db.keys("members")[0]
    for k in lent:
        db.update("tools", k, {"holder_id": member})
    assert [v.check for v in inv.violations(db, ctx)] == ["status == 'lent' or holder_id == null"] * 2
    assert inv.violations(db, ctx, tables=["loans"]) == []
    assert [v.key for v in inv.violations(db, ctx, keys={"tools": [lent[1]]})] == [lent[1]]
    assert len(inv.violations(db, ctx, limit=1)) == 1


def test_changed_only_finds_exactly_what_the_full_check_finds(bp, inv, ctx, db):
    """From a consistent state: random writes (updates, deletes, inserts), then the check of the
    rows changed since mark() agrees with the check of every row."""
    rng = random.Random(7)
    factory = RowFactory(bp.schema, 3, inv)
    base = db.snapshot()
    nonempty = 0
    for _ in range(150):
        db.restore(base)
        db.mark()
        for _ in range(rng.randint(1, 3)):
            t = rng.choice(bp.schema.tables)
            keys = db.keys(t.name)
            what = rng.random()
            if what < 0.2:
                db.delete(t.name, rng.choice(keys))
            elif what < 0.35:
                keymap = {x.name: db.keys(x.name) for x in bp.schema.tables}
                db.insert(t.name, factory.make_row(t, keymap, db.select(t.name)))
            else:
                col = rng.choice([c for c in t.columns if c.name != t.primary_key])
                value = rng.choice([r[col.name] for r in db.select(t.name)] + ([None] if col.nullable else []))
                db.update(t.name, rng.choice(keys), {col.name: value})
        full = {(v.table, v.key, v.check) for v in inv.violations(db, ctx)}
        changed = {(v.table, v.key, v.check) for v in inv.violations(db, ctx, changed_only=True)}
        assert changed == full
        nonempty += bool(full)
    assert nonempty > 30  # the writes did break invariants, of every kind
    db.restore(base)


# ---------------------------------------------------------------- derived invariants


def test_a_status_that_implies_a_column_is_derived(inv):
    assert _implications(inv) == {
        "derived: tools.status == 'available' implies holder_id == null",  # return_tool empties it
        "derived: loans.status == 'open' implies returned_on == null",  # lend_tool inserts it empty
        "derived: loans.status == 'returned' implies returned_on != null",  # return_tool sets it to today
    }
    # 'lent' implies holder_id != null too, but the blueprint states it: not doubled
    assert "derived: tools.status == 'lent' implies holder_id != null" not in {i.check for i in inv}
    # add_note writes note without a status: no status implies anything about note
    assert not any("note" in c for c in _implications(inv))
    refs = {i.check for i in inv.derived if i.kind == "ref"}
    assert refs == {"derived: tools.holder_id is null or names an existing members row",
                    "derived: loans.tool_id is null or names an existing tools row",
                    "derived: loans.member_id is null or names an existing members row"}


@pytest.mark.parametrize("extra, gone", [
    ("  return_undated:\n    params: {loan_id: loans.loan_id}\n"
     "    effects: [\"update loans[loan_id] set status = 'returned', returned_on = null\"]\n"
     "    returns: loans[loan_id]\n",
     {"derived: loans.status == 'returned' implies returned_on != null"}),  # writers disagree
    ("  mark_returned:\n    params: {loan_id: loans.loan_id}\n"
     "    effects: [\"update loans[loan_id] set status = 'returned'\"]\n    returns: loans[loan_id]\n",
     {"derived: loans.status == 'returned' implies returned_on != null"}),  # keeps whatever was there
    ("  backdate:\n    params: {loan_id: loans.loan_id, day: date}\n"
     "    effects: [\"update loans[loan_id] set returned_on = day\"]\n    returns: loans[loan_id]\n",
     {"derived: loans.status == 'open' implies returned_on == null",
      "derived: loans.status == 'returned' implies returned_on != null"}),  # written without the status
    ("  set_status:\n    params: {loan_id: loans.loan_id, status: loans.status}\n"
     "    effects: [\"update loans[loan_id] set status = status\"]\n    returns: loans[loan_id]\n",
     {"derived: loans.status == 'open' implies returned_on == null",
      "derived: loans.status == 'returned' implies returned_on != null"}),  # any status, not a literal
    ("  lend_quietly:\n    params: {tool_id: tools.tool_id, member_id: members.member_id, back: date optional}\n"
     "    effects: [\"insert loans {tool_id: tool_id, member_id: member_id, started_on: today, "
     "due_on: today, returned_on: back, status: 'open'}\"]\n    returns: inserted\n",
     {"derived: loans.status == 'open' implies returned_on == null"}),  # maybe null, maybe not
])
def test_no_implication_is_derived_when_writers_disagree(extra, gone):
    inv = Invariants(parse_blueprint(_with_ops(extra)))
    base = _implications(Invariants(load_blueprint(SHED)))
    assert _implications(inv) == base - gone


def test_nothing_is_derived_from_a_schema_alone_but_stated_and_references(bp):
    inv = Invariants(bp.schema)
    assert _implications(inv) == set() and len(inv.stated) == 7 and len(inv.derived) == 3
    domain = synthesize(bp, SynthOptions(seed=0))
    assert [i.check for i in Invariants.for_domain(domain)] == [i.check for i in Invariants(bp)]
    assert Invariants.for_domain(domain) is Invariants.for_domain(domain)  # cached


# ---------------------------------------------------------------- seed rows


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_seed_rows_keep_every_invariant(bp, inv, seed):
    factory = RowFactory(bp.schema, seed, inv)
    rows = factory.seed_rows()
    assert rows == RowFactory(bp.schema, seed, inv).seed_rows()  # still reproducible
    assert {t: len(r) for t, r in rows.items()} == {t.name: t.rows for t in bp.schema.tables}
    db = DomainDB(bp.schema)
    db.load(rows)
    assert inv.violations(db) == []
    assert sum(factory.repaired.values()) > 5  # not vacuous: rows were repaired ...
    raw = DomainDB(bp.schema)
    raw.load(RowFactory(bp.schema, seed, _no_invariants(bp)).seed_rows())
    assert inv.violations(raw)  # ... because rows made without the invariants break them
    assert {r["status"] for r in rows["loans"]} == {"open", "returned", "lost"}  # every status still seen


def _no_invariants(bp) -> Invariants:
    return Invariants(parse_blueprint(_unstated(TEXT)).schema)  # references only, which seed rows keep anyway


def _unstated(text: str) -> str:
    """The blueprint without its tables' invariants: blocks."""
    out, skip = [], False
    for line in text.splitlines():
        if line == "    invariants:":
            skip = True
            continue
        if skip and (line.startswith("      ") or not line.strip()):
            continue
        skip = False
        out.append(line)
    return "\n".join(out) + "\n"


def test_synthesis_seeds_with_the_derived_invariants_too(bp, inv):
    domain = synthesize(bp, SynthOptions(seed=1))
    assert domain.rows == RowFactory(bp.schema, 1, inv).seed_rows()
    db = DomainDB(bp.schema)
    db.load(domain.rows)
    assert inv.violations(db) == []


def test_invariants_no_seed_can_meet_fail_synthesis_in_one_line():
    text = TEXT.replace("      - check: due_on >= started_on", "      - check: due_on > add_days(started_on, 60)")
    line = text.splitlines().index("      - check: due_on > add_days(started_on, 60)") + 1
    with pytest.raises(BlueprintError) as e:
        synthesize(parse_blueprint(text, "shed.yaml"))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"shed.yaml:{line}: tables.loans.invariants[0]: no seed row of loans can be made to keep "
                          "'due_on > add_days(started_on, 60)' (a loan is due after it starts): row LN-")


def test_a_malformed_invariant_is_a_one_line_error_with_its_place():
    text = TEXT.replace('      - "status == \'lent\' or holder_id == null"', '      - "status == \'lent\' or holdr == null"')
    line = text.splitlines().index('      - "status == \'lent\' or holdr == null"') + 1
    with pytest.raises(BlueprintError) as e:
        parse_blueprint(text, "shed.yaml")
    assert "\n" not in str(e.value)
    assert str(e.value).startswith(f"shed.yaml:{line}: tables.tools.invariants[1]: unknown name 'holdr'")
    with pytest.raises(BlueprintError, match=r"tables\.loans\.invariants\[0\]: cannot parse"):
        parse_blueprint(TEXT.replace("check: due_on >= started_on", "check: due_on >= >= started_on"), "x")


# ---------------------------------------------------------------- procedural tests


BREAK_TOOL = """  break_tool:
    params: {tool_id: tools.tool_id}
    requires:
      - check: tools[tool_id].status == 'lent'
        message: only a lent tool is reported broken
    effects:
      - update tools[tool_id] set status = 'broken'
    returns: tools[tool_id]
"""
FIXED = BREAK_TOOL.replace("set status = 'broken'", "set status = 'broken', holder_id = null\n"
                           "      - update loans(tool_id=tool_id, status='open') set status = 'lost'")
RETIRE = """  retire_member:
    params: {member_id: members.member_id}
    requires:
      - exists(loans, member_id=member_id)
    effects:
      - delete members[member_id]
    returns: {member_id: member_id}
"""


def _record(text: str, name: str):
    domain = synthesize(parse_blueprint(text, "shed.yaml"), SynthOptions(seed=0))
    return next(t for t in domain.tools if t.spec.name == name)


def test_a_tool_that_breaks_a_stated_invariant_is_rejected_naming_it():
    rec = _record(_with_ops(BREAK_TOOL), "break_tool")
    assert rec.status == "rejected"
    assert "breaks an invariant: tools TL-" in rec.reason
    assert "status == 'lent' or holder_id == null" in rec.reason
    failed = [r for r in rec.results if not r.passed]
    assert failed and all(r.case.expect == "ok" for r in failed)
    assert _record(_with_ops(FIXED), "break_tool").status == "passed"  # the same tool, keeping them
    assert _record(_with_ops(BREAK_TOOL, _unstated(TEXT)), "break_tool").status == "passed"  # nothing to keep


def test_a_tool_that_leaves_a_dangling_reference_is_rejected_naming_the_derived_invariant():
    rec = _record(_with_ops(RETIRE), "retire_member")
    assert rec.status == "rejected"
    assert "breaks an invariant: loans LN-" in rec.reason
    assert "derived: loans.member_id is null or names an existing members row" in rec.reason


def test_a_tool_is_not_judged_on_a_state_that_was_inconsistent_before(bp, inv, ctx):
    from core.runtime.sandbox import load_tool
    from core.synthesis import proctest

    domain = synthesize(bp, SynthOptions(seed=0))
    rec = next(t for t in domain.tools if t.spec.name == "return_tool")
    fn = load_tool(rec.implementation.source, "return_tool")
    op = bp.operation("return_tool")
    db = DomainDB(bp.schema)
    db.load(domain.rows)
    loan = db.select("loans", status="open")[0]
    # a second open loan of the same tool: the state breaks "a lent tool has exactly one open loan"
    db.insert("loans", {**loan, "loan_id": None})
    case = proctest.PreparedCase(proctest.TestCase(name="happy", kind="happy", args={"loan_id": loan["loan_id"]},
                                                   expect="ok"), db.snapshot())
    assert proctest.run_case(case, op, fn, db, ctx, invariants=inv).passed
    assert case.consistent is False
    assert inv.violations(db, ctx)  # the call did leave a broken state: the other loan is open, its tool available
    db.restore(case.state)
    db.delete("loans", db.keys("loans")[-1])
    good = proctest.PreparedCase(case.case, db.snapshot())
    assert proctest.run_case(good, op, fn, db, ctx, invariants=inv).passed and good.consistent in (None, True)


def test_the_case_builder_judges_tools_on_consistent_states():
    """Arranging for a requirement (a lent tool) breaks invariants (no holder, no open loan); the
    builder repairs the state, so every case expected to succeed starts consistent."""
    from core.synthesis.proctest import CaseBuilder

    bp = parse_blueprint(_with_ops(BREAK_TOOL + RETIRE))
    inv = Invariants(bp)
    factory = RowFactory(bp.schema, 0, inv)
    db = DomainDB(bp.schema)
    db.load(factory.seed_rows())
    ctx = ToolContext(bp.schema.clock)
    base = db.snapshot()
    checked = 0
    for name in ("lend_tool", "return_tool", "break_tool", "retire_member"):
        cases, _ = CaseBuilder(bp.operation(name), base, db, factory, ctx, 0).build()
        for pc in cases:
            if pc.case.expect == "ok":
                db.restore(pc.state)
                assert inv.violations(db, ctx) == [], (name, pc.case.name)
                checked += 1
        assert any(pc.case.kind == "happy" for pc in cases), name
    assert checked >= 10


def _outcome(fn):
    try:
        return ("value", fn())
    except Exception as e:  # noqa: BLE001 - the error is the outcome compared
        return ("error", type(e).__name__, str(e))


@pytest.mark.parametrize("path", [SHED, *sorted((SHED.parents[2] / "sample_domains").glob("*.yaml"))],
                         ids=lambda p: p.stem)
def test_a_compiled_check_answers_as_the_interpreter_does(path):
    """compile_check(e)(row, db, ctx) == Evaluator(db, ctx, row).eval(e), errors included, on every
    row of seed states with random writes (empty values, missing rows, values of other rows)."""
    from core.data.invariants import compile_check
    from core.spec.interp import Evaluator

    bp = load_blueprint(path)
    inv = Invariants(bp)
    db = DomainDB(bp.schema)
    db.load(RowFactory(bp.schema, 0, inv).seed_rows())
    ctx = ToolContext(bp.schema.clock)
    rng = random.Random(11)
    checks = [(i, compile_check(i.expr)) for i in inv.all]
    compared = errors = 0
    for _ in range(6):
        for _ in range(8):
            t = rng.choice(bp.schema.tables)
            col = rng.choice([c for c in t.columns if c.name != t.primary_key])
            value = rng.choice([r[col.name] for r in db.select(t.name)] + [None])
            if col.nullable or value is not None:
                db.update(t.name, rng.choice(db.keys(t.name)), {col.name: value})
            if rng.random() < 0.2:
                db.delete(t.name, rng.choice(db.keys(t.name)))
        for i, fn in checks:
            for row in db.select(i.table):
                want = _outcome(lambda r=row, e=i.expr: Evaluator(db, ctx, r).eval(e))
                assert _outcome(lambda r=row, f=fn: f(r, db, ctx)) == want, (i.check, row)
                compared += 1
                errors += want[0] == "error"
    assert compared > 500 and errors > 0


@pytest.mark.parametrize("path", [SHED, *sorted((SHED.parents[2] / "sample_domains").glob("*.yaml"))],
                         ids=lambda p: p.stem)
def test_the_check_of_a_state_finds_what_the_interpreter_finds_row_by_row(path):
    """violations() (SQL guards, shared reads, compiled checks) against the plain reading: every
    invariant evaluated by the interpreter on every row, with the error as the reason."""
    from core.spec.interp import Evaluator

    bp = load_blueprint(path)
    inv = Invariants(bp)
    db = DomainDB(bp.schema)
    db.load(RowFactory(bp.schema, 0, inv).seed_rows())
    ctx = ToolContext(bp.schema.clock)
    rng = random.Random(5)

    def plain() -> set:
        out = set()
        for i in inv.all:
            pk = bp.schema.table(i.table).primary_key
            for row in db.select(i.table):
                try:
                    ok, why = bool(Evaluator(db, ctx, row).eval(i.expr)), ""
                except Exception as e:  # noqa: BLE001
                    ok, why = False, f"{type(e).__name__}: {e}"
                if not ok:
                    out.add((i.table, row[pk], i.check, why if i.kind == "stated" else ""))
        return out

    found = 0
    for _ in range(8):
        for _ in range(6):
            t = rng.choice(bp.schema.tables)
            col = rng.choice([c for c in t.columns if c.name != t.primary_key])
            value = rng.choice([r[col.name] for r in db.select(t.name)] + [None])
            if col.nullable or value is not None:
                db.update(t.name, rng.choice(db.keys(t.name)), {col.name: value})
            if rng.random() < 0.15:
                db.delete(t.name, rng.choice(db.keys(t.name)))
        got = {(v.table, v.key, v.check, v.reason if not v.derived else "") for v in inv.violations(db, ctx)}
        assert got == plain()
        found += len(got)
    assert found > 0 or path != SHED  # (random writes need not break a sample domain's checks)
