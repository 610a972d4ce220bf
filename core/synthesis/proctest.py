"""Procedural testing: test cases derived from a tool's specification, run against its code.

For each tool: happy paths (effects and return checked against the specification
interpreter), a boundary case for each inequality, each requirement violated while the others
hold (a ``precondition`` error and the state unchanged), each looked-up id missing
(``not_found``), bad arguments (an ``invalid_argument`` error naming the argument), and
determinism (the same call on the same state gives the same result and state hash).

Nothing here reads the implementation: expectations come from :mod:`core.spec.interp`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.data.db import DomainDB
from core.data.invariants import Invariants
from core.data.models import TestCase, TestResult
from core.data.seed import RowFactory, derive_seed
from core.runtime.context import ToolContext, ToolError
from core.runtime.invoke import ArgValidator, Outcome, invoke
from core.spec import expr as X
from core.spec import interp
from core.spec.blueprint import Operation
from core.synthesis.arrange import Arranger


class SpecError(RuntimeError):
    """The blueprint's own expressions fail for some arguments: the operation is ill-defined."""


@dataclass
class PreparedCase:
    case: TestCase
    state: bytes
    consistent: bool | None = None  # does the state keep the domain's invariants (None: not checked yet)


def canonical(value: Any) -> str:
    def norm(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 6)
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, default=repr)


def expected_outcome(op: Operation, db: DomainDB, ctx: ToolContext, args: dict) -> Outcome:
    """What the specification says the call does (applied to ``db``)."""
    try:
        clean = ArgValidator(op.spec.parameters)(args)
    except ToolError as e:
        return Outcome(False, error=e.to_dict())
    db.conn.execute("SAVEPOINT spec")
    try:
        result = interp.run(op, db, ctx, clean)
    except ToolError as e:
        db.conn.execute("ROLLBACK TO spec")
        db.conn.execute("RELEASE spec")
        return Outcome(False, error=e.to_dict())
    except Exception as e:  # the specification itself fails here (e.g. a division by zero)
        db.conn.execute("ROLLBACK TO spec")
        db.conn.execute("RELEASE spec")
        raise SpecError(f"the specification fails for {canonical(args)[:200]}: {type(e).__name__}: {e}") from None
    db.conn.execute("RELEASE spec")
    return Outcome(True, result=result)


class CaseBuilder:
    """Derives test cases for one operation from its specification."""

    def __init__(self, op: Operation, base: bytes, db: DomainDB, factory: RowFactory, ctx: ToolContext, seed: int):
        self.op, self.base, self.db, self.factory, self.ctx = op, base, db, factory, ctx
        self.rng = random.Random(derive_seed(seed, db.schema.name, op.name, "cases"))

    def _arranged(self, violate: int | None = None, boundary: bool = False,
                  near_misses: bool = False) -> tuple[dict, bytes] | None:
        """A state and arguments for a case; checked against the specification before use."""
        want = "ok" if violate is None else "precondition"
        self.db.restore(self.base)
        arr = Arranger(self.db, self.factory, self.ctx, self.rng).bind(self.op)
        inv = self.factory.invariants if want == "ok" else None  # a tool is judged on consistent states
        arr.consistent = bool(inv)
        fallback = None
        for _ in range(4 if not inv else 6):
            args = arr.choose_args(self.op)
            got = arr.arrange(self.op, args, violate=violate, boundary=boundary)
            if got is not None:
                if near_misses and arr.add_near_misses(self.op, got, violate) and inv:
                    arr.make_consistent(self.op, got, violate)  # arrange did, before the near misses
                consistent = not inv or inv.consistent(self.db, self.ctx, changed_only=True)
                state = self.db.snapshot()
                if expected_outcome(self.op, self.db, self.ctx, got).kind == want:
                    if consistent:
                        return got, state
                    fallback = fallback or (got, state)
            self.db.restore(self.base)
        return fallback

    def build(self) -> tuple[list[PreparedCase], list[str]]:
        op, out, notes = self.op, [], []
        happy = []
        for i in range(2):
            got = self._arranged(near_misses=True)
            if got:
                happy.append(got)
                out.append(PreparedCase(TestCase(name=f"happy path {i + 1}", kind="happy", args=got[0],
                                                 expect="ok"), got[1]))
        if not happy:
            notes.append("no state satisfies its requirements (could not build a happy path)")
            return out, notes
        if any(isinstance(e, X.Compare) and e.op in ("<", "<=", ">", ">=") for e, _ in op.requires):
            got = self._arranged(boundary=True, near_misses=True)
            if got:
                out.append(PreparedCase(TestCase(name="boundary values", kind="boundary", args=got[0], expect="ok"),
                                        got[1]))
        for i, (_, req) in enumerate(op.requires):
            got = self._arranged(violate=i, near_misses=True)
            if got:
                out.append(PreparedCase(TestCase(name=f"violates: {req.check}", kind="precondition", args=got[0],
                                                 expect="precondition", detail=req.message), got[1]))
            else:
                notes.append(f"could not build a state violating only: {req.check}")
        args0, state0 = happy[0]
        for lk in interp.op_lookups(op):
            if isinstance(lk.key, X.Param):
                t = self.db.schema.table(lk.table)
                missing = f"{t.column(t.primary_key).prefix}-X404"
                out.append(PreparedCase(TestCase(name=f"unknown {lk.key.name}", kind="not_found",
                                                 args={**args0, lk.key.name: missing}, expect="not_found"), state0))
        for lk in interp.op_lookups(op):
            if isinstance(lk.key, X.Field):  # a row reached through a reference that is gone
                self.db.restore(state0)
                try:
                    key = interp.Evaluator(self.db, self.ctx, args0).eval(lk.key)
                except ToolError:
                    continue
                if key is None or self.db.get(lk.table, key) is None:
                    continue
                self.db.delete(lk.table, key)
                if expected_outcome(op, self.db, self.ctx, args0).kind == "not_found":
                    out.append(PreparedCase(TestCase(name=f"missing {X.render(lk)}", kind="not_found", args=args0,
                                                     expect="not_found"), self.db.snapshot()))
        if isinstance(op.returns, X.RetOne):
            c, v = op.returns.filters[0]
            if isinstance(v, X.Param):
                out.append(PreparedCase(TestCase(name=f"unknown {v.name}", kind="not_found",
                                                 args={**args0, v.name: "no-such-value-404"}, expect="not_found"),
                                        state0))
        for name, args, arg in self._bad_args(args0):
            out.append(PreparedCase(TestCase(name=name, kind="bad_argument", args=args, expect="invalid_argument",
                                             detail=arg), state0))
        out.append(PreparedCase(TestCase(name="same call, same state, same outcome", kind="determinism",
                                         args=args0, expect="ok"), state0))
        return out, notes

    def _bad_args(self, good: dict) -> list[tuple[str, dict, str]]:
        out = []
        params = self.op.spec.params
        req = [p for p in params if not p.optional]
        if req:
            p = req[self.rng.randrange(len(req))]
            out.append((f"missing {p.name}", {k: v for k, v in good.items() if k != p.name}, p.name))
        out.append(("unknown argument", {**good, "unexpected_field": 1}, "unexpected_field"))
        for p in params:
            n = p.name
            wrong: Any = "not-a-number" if p.type in ("integer", "number") else (
                "yes" if p.type == "boolean" else 12345)
            out.append((f"wrong type for {n}", {**good, n: wrong}, n))
            if p.enum:
                out.append((f"{n} outside its values", {**good, n: "no_such_value"}, n))
            if p.maximum is not None:
                over = p.maximum + (1 if p.type == "integer" else 0.5)
                out.append((f"{n} above its maximum", {**good, n: int(over) if p.type == "integer" else over}, n))
            if p.minimum is not None:
                under = p.minimum - (1 if p.type == "integer" else 0.5)
                out.append((f"{n} below its minimum", {**good, n: int(under) if p.type == "integer" else under}, n))
            if p.format == "date":
                out.append((f"{n} not a date", {**good, n: "31/02/2026"}, n))
        return out


def run_case(pc: PreparedCase, op: Operation, fn: Callable[..., Any], db: DomainDB, ctx: ToolContext,
             seconds: float = 2.0, invariants: Invariants | None = None) -> TestResult:
    """Run one case. With ``invariants``, a call that succeeds on a state keeping them must leave a
    state keeping them (states the case builder left inconsistent are not held against the tool)."""
    case = pc.case
    t0 = time.perf_counter()
    validator = ArgValidator(op.spec.parameters)

    def fail(reason: str) -> TestResult:
        return TestResult(case=case, passed=False, reason=reason, seconds=round(time.perf_counter() - t0, 6))

    db.restore(pc.state)
    expected = expected_outcome(op, db, ctx, case.args)
    exp_hash = canonical(db.changes())
    if expected.kind != case.expect:
        # the case could not be built as intended; the specification decides what is right
        case = case.model_copy(update={"expect": expected.kind})
    db.restore(pc.state)
    got = invoke(fn, validator, db, ctx, case.args, seconds=seconds)
    got_hash = canonical(db.changes())
    if got.kind != expected.kind:
        msg = got.error.get("message", "") if not got.ok else "it succeeded"
        return fail(f"expected {expected.kind}, got {got.kind}: {msg}")
    if got.ok:
        if canonical(got.result) != canonical(expected.result):
            return fail(f"wrong return value: expected {canonical(expected.result)[:300]}, "
                        f"got {canonical(got.result)[:300]}")
        if got_hash != exp_hash:
            return fail("wrong effects: the database after the call differs from the specification")
        if invariants is not None and len(invariants):
            broken = invariants.violations(db, ctx, changed_only=True)
            if broken and _consistent(pc, db, ctx, invariants):
                more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
                return fail(f"breaks an invariant: {broken[0]}{more}")
    else:
        if got_hash != "{}":
            return fail("the state changed although the call failed")
        seen = got.error.get("observed")
        if seen and canonical(seen) != canonical(expected.error.get("observed", {})):
            return fail(f"the error reports wrong values: expected {canonical(expected.error.get('observed'))[:200]}, "
                        f"got {canonical(seen)[:200]}")
        if case.expect == "invalid_argument" and case.detail and got.error.get("argument") != case.detail:
            return fail(f"the error does not name the argument {case.detail!r}")
    if case.kind == "determinism":
        db.restore(pc.state)
        again = invoke(fn, validator, db, ctx, case.args, seconds=seconds)
        if canonical(again.to_dict()) != canonical(got.to_dict()) or canonical(db.changes()) != got_hash:
            return fail("not deterministic: the same call on the same state gave a different outcome")
    return TestResult(case=case, passed=True, seconds=round(time.perf_counter() - t0, 6))


def _consistent(pc: PreparedCase, db: DomainDB, ctx: ToolContext, invariants: Invariants) -> bool:
    """Whether the case's state kept the invariants before the call (checked once per case, on a copy)."""
    if pc.consistent is None:
        before = DomainDB.from_snapshot(db.schema, pc.state)
        try:
            pc.consistent = invariants.consistent(before, ctx)
        finally:
            before.close()
    return pc.consistent


def test_tool(op: Operation, fn: Callable[..., Any], cases: list[PreparedCase], db: DomainDB, ctx: ToolContext,
              seconds: float = 2.0, invariants: Invariants | None = None) -> list[TestResult]:
    return [run_case(pc, op, fn, db, ctx, seconds, invariants) for pc in cases]


test_tool.__test__ = False  # type: ignore[attr-defined]
