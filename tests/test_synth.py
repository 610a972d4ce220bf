"""Procedural tests catch broken tools; synthesis is complete, deterministic, and builds a labelled graph."""

from __future__ import annotations

import pytest

from core.runtime.invoke import ArgValidator, invoke
from core.runtime.sandbox import load_tool
from core.synthesis import proctest
from core.synthesis.codegen import compile_operation
from core.synthesis.graph import graph_stats
from core.synthesis.proctest import CaseBuilder


def _cases(env, op):
    cases, notes = CaseBuilder(op, env.base, env.db, env.factory, env.ctx, 0).build()
    assert cases, notes
    return cases


def _run(env, op, source, cases):
    return proctest.test_tool(op, load_tool(source, op.name), cases, env.db, env.ctx)


TOOLS = ["register_rider", "top_up_balance", "start_rental", "end_rental", "buy_pass", "rider_summary",
         "find_rider_by_email", "list_rentals_by_rider"]


@pytest.mark.parametrize("name", TOOLS)
def test_correct_source_passes_every_case(env, name):
    op = env.bp.operation(name)
    cases = _cases(env, op)
    kinds = {c.case.kind for c in cases}
    assert {"happy", "bad_argument", "determinism"} <= kinds
    assert ("precondition" in kinds) == bool(op.requires)  # one case per requirement, none without
    results = _run(env, op, compile_operation(op, env.bp.schema), cases)
    assert [r.reason for r in results if not r.passed] == []


# (tool, what is broken, text in the generated source, replacement, case kind that must catch it, reason fragment)
MUTANTS = [
    ("start_rental", "drop an effect",
     '    db.update("bikes", bike["bike_id"], {"status": \'rented\', "station_id": None})\n', "",
     "happy", "wrong effects"),
    ("start_rental", "flip >= to >", 'rider["balance"] >= bike["hourly_rate"]', 'rider["balance"] > bike["hourly_rate"]',
     "boundary", "expected ok, got precondition"),
    ("start_rental", "flip == to !=", "status='active') == 0):", "status='active') != 0):",
     "happy", "expected ok, got precondition"),
    ("start_rental", "skip a requirement check",
     "    if not (bike[\"status\"] == 'available'):\n"
     "        raise PreconditionFailed('the bike is not available', observed={\"bikes.status\": bike[\"status\"]})\n",
     "", "precondition", "expected precondition, got ok"),
    ("start_rental", "return the wrong row", "return inserted", "return bike", "happy", "wrong return value"),
    ("start_rental", "skip a not-found check", '    if rider is None:\n        raise NotFound("riders", rider_id)\n',
     "", "not_found", "expected not_found"),
    ("end_rental", "return the pre-state row", 'return db.get("rentals", rental_id)', "return rental",
     "happy", "wrong return value"),
    ("end_rental", "credit instead of charge", 'rider["balance"] - (', 'rider["balance"] + (',
     "happy", "wrong effects"),
    ("end_rental", "off-by-one capacity", '< station["capacity"]', '<= station["capacity"]',
     "precondition", "expected precondition, got ok"),
    ("end_rental", "drop the payment insert",
     '    inserted = db.insert("payments", {"rider_id": rental["rider_id"], "amount": (bike["hourly_rate"] * hours), '
     '"kind": \'rental_charge\', "created_at": ctx.now})\n', "", "happy", "wrong effects"),
    ("top_up_balance", "return the row read before the update", 'return db.get("riders", rider_id)', "return rider",
     "happy", "wrong return value"),
    ("buy_pass", "wrong literal", "ctx.add_days(ctx.today, 30)", "ctx.add_days(ctx.today, 31)",
     "happy", "wrong return value"),
    ("rider_summary", "drop a filter", ", kind='rental_charge')", ")", "happy", "wrong return value"),
    ("find_rider_by_email", "unknown email not reported", "if len(rows) != 1:", "if len(rows) > 1:",
     "not_found", "expected not_found"),
    ("register_rider", "wrong status written", "\"status\": 'active'", "\"status\": 'suspended'",
     "happy", "wrong return value"),
]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{m[0]}: {m[1]}" for m in MUTANTS])
def test_broken_source_is_caught(env, mutant):
    name, _, old, new, kind, reason = mutant
    op = env.bp.operation(name)
    source = compile_operation(op, env.bp.schema)
    assert source.count(old) >= 1, f"test setup: {old!r} not in the generated source of {name}"
    broken = source.replace(old, new)
    cases = _cases(env, op)
    failed = [r for r in _run(env, op, broken, cases) if not r.passed]
    assert failed, "every case passed on broken code"
    assert any(r.case.kind == kind and reason in r.reason for r in failed), [(r.case.kind, r.reason) for r in failed]


def test_a_requirement_violation_leaves_the_state_unchanged_and_is_named(env):
    op = env.bp.operation("start_rental")
    cases = [c for c in _cases(env, op) if c.case.kind == "precondition"]
    assert len(cases) == len(op.requires)
    fn = load_tool(compile_operation(op, env.bp.schema), op.name)
    for pc, (_, req) in zip(cases, op.requires, strict=True):
        env.db.restore(pc.state)
        before = env.db.state_hash()
        out = invoke(fn, ArgValidator(op.spec.parameters), env.db, env.ctx, pc.case.args)
        assert out.error["kind"] == "precondition"
        assert out.error["message"] == req.message
        assert env.db.state_hash() == before


BAD_ARGS = [
    ("top_up_balance", {"rider_id": "RDR-0001"}, "amount", "missing required argument 'amount'"),
    ("top_up_balance", {"rider_id": "RDR-0001", "amount": "ten"}, "amount", "must be a number"),
    ("top_up_balance", {"rider_id": "RDR-0001", "amount": 500}, "amount", "must be at most 200"),
    ("top_up_balance", {"rider_id": "RDR-0001", "amount": 1}, "amount", "must be at least 5"),
    ("top_up_balance", {"rider_id": 7, "amount": 10}, "rider_id", "must be a string"),
    ("top_up_balance", {"rider_id": "RDR-0001", "amount": 10, "tip": 1}, "tip", "unknown argument 'tip'"),
    ("buy_pass", {"rider_id": "RDR-0001", "kind": "year"}, "kind", "must be one of day, week, month"),
    ("end_rental", {"rental_id": "RNT-0001", "station_id": "STN-0001", "hours": 2.5}, "hours", "whole number"),
]


@pytest.mark.parametrize("name,args,argument,message", BAD_ARGS, ids=[f"{b[0]}: {b[3]}" for b in BAD_ARGS])
def test_bad_arguments_are_refused_naming_the_argument(env, name, args, argument, message):
    op = env.bp.operation(name)
    before = env.db.state_hash()
    called = []

    def spy(db, ctx, **kw):
        called.append(kw)

    out = invoke(spy, ArgValidator(op.spec.parameters), env.db, env.ctx, args)
    assert out.error["kind"] == "invalid_argument"
    assert out.error["argument"] == argument
    assert message in out.error["message"]
    assert called == [] and env.db.state_hash() == before


# ---------------------------------------------------------------- synthesis


def test_every_bike_rental_tool_passes(bike_domain, bike_bp):
    assert [t.spec.name for t in bike_domain.tools] == [o.name for o in bike_bp.operations]
    rejected = {t.spec.name: t.reason for t in bike_domain.tools if t.status != "passed"}
    assert rejected == {}
    for t in bike_domain.tools:
        assert t.results and all(r.passed for r in t.results), t.spec.name
        load_tool(t.implementation.source, t.spec.name)  # the stored source is what runs
    st = bike_domain.stats()
    assert st.tools == st.tools_passed == len(bike_bp.operations)
    assert st.tests == st.tests_passed > 0
    assert st.rows == sum(t.rows for t in bike_bp.schema.tables)


def test_seed_rows_respect_the_schema(bike_domain):
    rows, schema = bike_domain.rows, bike_domain.domain
    assert {t.name: len({r[t.primary_key] for r in rows[t.name]}) for t in schema.tables} == {
        t.name: t.rows for t in schema.tables}
    cols = [(t, c, [r[c.name] for r in rows[t.name]]) for t in schema.tables for c in t.columns]
    keys = {t.name: {r[t.primary_key] for r in rows[t.name]} for t in schema.tables}
    problems = [f"{t.name}.{c.name} has empty values" for t, c, v in cols if not c.nullable and None in v]
    problems += [f"{t.name}.{c.name} is not unique" for t, c, v in cols
                 if c.unique and len({x for x in v if x is not None}) != len([x for x in v if x is not None])]
    problems += [f"{t.name}.{c.name} points at missing rows" for t, c, v in cols
                 if c.type == "ref" and not {x for x in v if x is not None} <= keys[c.table]]
    problems += [f"{t.name}.{c.name} is outside its enum" for t, c, v in cols
                 if c.type == "enum" and not {x for x in v if x is not None} <= set(c.values)]
    problems += [f"{t.name}.{c.name} is out of bounds" for t, c, v in cols
                 if c.type in ("int", "money", "float") and not all(c.min <= x <= c.max for x in v if x is not None)]
    assert problems == []
    assert sum(c.type == "ref" for _, c, _ in cols) >= 5 and sum(c.unique for _, c, _ in cols) >= 3  # not vacuous


def _fingerprint(d):
    return (d.rows, [t.implementation.source for t in d.tools],
            [(e.source, e.target, e.kind, e.label, e.reason) for e in d.edges],
            [[(r.case.name, r.case.args, r.passed) for r in t.results] for t in d.tools])


def test_same_seed_same_domain_other_seed_other_rows(bike_domain, bike_bp):
    from core.synthesis.synth import SynthOptions, synthesize

    again = synthesize(bike_bp, SynthOptions(seed=0))
    assert _fingerprint(again) == _fingerprint(bike_domain)
    other = synthesize(bike_bp, SynthOptions(seed=1))
    assert other.rows != bike_domain.rows
    assert other.rows["riders"][0]["email"] != bike_domain.rows["riders"][0]["email"]
    assert [t.implementation.source for t in other.tools] == [t.implementation.source for t in bike_domain.tools]
    assert all(t.status == "passed" for t in other.tools)


def test_graph_has_labelled_data_and_state_edges(bike_domain):
    edges = {(e.source, e.target, e.kind): e for e in bike_domain.edges}
    data = edges[("find_rider_by_email", "start_rental", "data")]
    assert data.label == {"rider_id": "rider_id"}
    assert edges[("start_rental", "end_rental", "data")].label["rental_id"] == "rental_id"
    state = edges[("end_rental", "start_rental", "state")]
    assert "count(rentals, rider_id=rider_id, status='active') == 0" in state.reason
    assert ("start_rental", "end_rental", "state") in edges  # start makes the rental active
    assert ("suspend_rider", "start_rental", "state") not in edges  # suspending never makes a rider active
    assert all(e.kind == "data" and e.label or e.kind == "state" and e.reason for e in bike_domain.edges)
    names = {t.spec.name for t in bike_domain.tools}
    assert all(e.source in names and e.target in names and e.source != e.target for e in bike_domain.edges)
    st = bike_domain.stats()
    g = graph_stats(sorted(names), bike_domain.edges)  # networkx's count and density of the same graph
    assert (st.edges, st.density, st.tools_passed) == (g["edges"], g["density"], g["nodes"])
    assert g["data_edges"] + g["state_edges"] == len(bike_domain.edges) > st.edges > 0  # some pairs have both


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="core/synthesis/graph.py links identical plain columns (see tests/test_graph.py): top_up_balance -> "
                          "register_rider {name: name, email: email, phone: phone}")
def test_every_data_edge_links_ids_or_references(bike_domain):
    schema = bike_domain.domain
    tools = {t.spec.name: t.spec for t in bike_domain.tools}

    def kind(carried):
        table, col = carried.split(".")
        return schema.table(table).column(col).type

    plain = [(e.source, e.target, f, p) for e in bike_domain.edges if e.kind == "data" for f, p in e.label.items()
             if kind(tools[e.source].returns.fields[f]) not in ("id", "ref")
             or kind(next(q.column for q in tools[e.target].params if q.name == p)) not in ("id", "ref")]
    assert plain == []


class _BrokenBackend:
    """Writes correct code except for two tools: one mutated, one hostile."""

    name = "broken-for-test"
    max_attempts = 1

    def implement(self, op, schema, feedback):
        from core.data.models import Implementation

        src = compile_operation(op, schema)
        if op.name == "start_rental":
            src = src.replace('rider["balance"] >= bike["hourly_rate"]', "True")
        if op.name == "cancel_rental":
            src = "import os\n" + src
        return Implementation(tool=op.name, source=src, backend=self.name)


def test_rejected_tools_carry_their_reason_and_stay_out_of_the_graph(bike_bp):
    from core.synthesis.synth import synthesize

    d = synthesize(bike_bp, backend=_BrokenBackend())
    by = {t.spec.name: t for t in d.tools}
    assert by["start_rental"].status == "rejected"
    assert "violates: riders[rider_id].balance >= bikes[bike_id].hourly_rate" in by["start_rental"].reason
    assert by["cancel_rental"].status == "rejected"
    assert by["cancel_rental"].reason.startswith("refused by the sandbox policy")
    assert "import of 'os'" in by["cancel_rental"].reason
    assert sum(t.status == "rejected" for t in d.tools) == 2
    assert not [e for e in d.edges if {"start_rental", "cancel_rental"} & {e.source, e.target}]
    assert d.stats().tools_passed == len(d.tools) - 2
    assert d.provenance.backend == "broken-for-test"


class _LearningBackend:
    """Fails its first attempt; the second uses the feedback (the LLM debug loop's contract)."""

    name = "learning"
    max_attempts = 3

    def __init__(self):
        self.feedback: list[list[str]] = []

    def implement(self, op, schema, feedback):
        from core.data.models import Implementation

        self.feedback.append(list(feedback))
        src = compile_operation(op, schema)
        if not feedback:
            src = src.replace("return inserted", "return bike")
        return Implementation(tool=op.name, source=src, backend=self.name)


def test_a_failing_tool_is_regenerated_with_its_failures_as_feedback(env):
    from core.synthesis.synth import SynthOptions, implement_and_test

    backend = _LearningBackend()
    op = env.bp.operation("start_rental")
    rec = implement_and_test(op, env.bp, backend, env.db, env.base, env.factory, env.ctx, SynthOptions())
    assert rec.status == "passed"
    assert rec.implementation.attempts == 2
    assert backend.feedback[0] == []
    assert any("wrong return value" in f for f in backend.feedback[1])


class _DottedImportBackend:
    """Writes a tool that imports from a submodule of an allowed module."""

    name = "dotted-import"
    max_attempts = 1

    def implement(self, op, schema, feedback):
        from core.data.models import Implementation

        src = "from json.decoder import scanstring\n" + compile_operation(op, schema)
        return Implementation(tool=op.name, source=src, backend=self.name)


def test_a_tool_the_sandbox_cannot_load_is_rejected_not_a_crash(env):
    from core.synthesis.synth import SynthOptions, implement_and_test

    op = env.bp.operation("top_up_balance")
    rec = implement_and_test(op, env.bp, _DottedImportBackend(), env.db, env.base, env.factory, env.ctx,
                             SynthOptions())
    assert rec.status == "rejected" and "json.decoder" in rec.reason
