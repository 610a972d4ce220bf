"""Phase 1 — from a blueprint to a tested, executable tool graph.

:func:`synthesize` runs the stages in order for one blueprint: seed data, one implementation
per operation (from the backend), the sandbox policy, procedural tests, and the Tool
Dependency Graph over the tools that passed. :func:`synthesize_many` runs each domain in its
own forked process with memory and time limits, two at a time by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import __version__
from core.data.db import DomainDB
from core.data.invariants import Invariants
from core.data.models import Domain, Provenance, TestResult, ToolRecord
from core.data.seed import RowFactory, SeedError
from core.runtime.context import ToolContext
from core.runtime.sandbox import Limits, PolicyViolation, load_tool, run_isolated_many
from core.spec.blueprint import Blueprint, BlueprintError, Operation
from core.synthesis.backends import Backend, ProceduralBackend
from core.synthesis.graph import build_edges
from core.synthesis.proctest import CaseBuilder, SpecError, test_tool


@dataclass
class SynthOptions:
    seed: int = 0
    scale: float = 1.0  # multiply every table's seed row count
    call_seconds: float = 2.0  # time limit per tool call in tests


def implement_and_test(op: Operation, bp: Blueprint, backend: Backend, db: DomainDB, base: bytes,
                       factory: RowFactory, ctx: ToolContext, opts: SynthOptions,
                       invariants: Invariants | None = None) -> ToolRecord:
    """Generate, check and test one tool; retry with feedback up to the backend's limit."""
    try:
        cases, notes = CaseBuilder(op, base, db, factory, ctx, opts.seed).build()
    except SpecError as e:
        return ToolRecord(spec=op.spec, implementation=backend.implement(op, bp.schema, []), status="rejected",
                          reason=str(e))
    feedback: list[str] = []
    record: ToolRecord | None = None
    for attempt in range(1, backend.max_attempts + 1):
        impl = backend.implement(op, bp.schema, feedback)
        impl.attempts = attempt
        try:
            fn = load_tool(impl.source, op.name)
        except PolicyViolation as e:
            record = ToolRecord(spec=op.spec, implementation=impl, status="rejected",
                                reason="refused by the sandbox policy: " + "; ".join(e.violations))
            feedback = e.violations
            continue
        try:
            results: list[TestResult] = test_tool(op, fn, cases, db, ctx, opts.call_seconds, invariants)
        except SpecError as e:
            record = ToolRecord(spec=op.spec, implementation=impl, status="rejected", reason=str(e))
            break
        failed = [r for r in results if not r.passed]
        if not cases or any(c.case.kind == "happy" for c in cases) is False:
            reason = "; ".join(notes) or "no test could be built"
            record = ToolRecord(spec=op.spec, implementation=impl, results=results, status="rejected", reason=reason)
            break
        if failed:
            reason = f"{len(failed)}/{len(results)} tests failed: " + "; ".join(
                f"{r.case.name}: {r.reason}" for r in failed[:3])
            record = ToolRecord(spec=op.spec, implementation=impl, results=results, status="rejected", reason=reason)
            feedback = [f"{r.case.name}: {r.reason}" for r in failed]
            continue
        record = ToolRecord(spec=op.spec, implementation=impl, results=results, status="passed",
                            reason="; ".join(notes))
        break
    assert record is not None
    return record


def _line(bp: Blueprint, where: str) -> int | None:
    """The blueprint line of a place such as ``tables.loans.invariants[0]`` (None if unknown)."""
    import re

    import yaml

    from core.spec.blueprint import _lines

    path = tuple(int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]\.?", where) if p)
    try:
        lines = _lines(yaml.compose(bp.text, Loader=yaml.SafeLoader))
    except Exception:  # noqa: BLE001 - a line number is a courtesy
        return None
    return next((lines[path[:i]] for i in range(len(path), 0, -1) if path[:i] in lines), None)


def synthesize(bp: Blueprint, opts: SynthOptions | None = None, backend: Backend | None = None,
               report: Callable[[Any], None] | None = None) -> Domain:
    opts = opts or SynthOptions()
    backend = backend or ProceduralBackend()
    t0 = time.perf_counter()
    invariants = Invariants(bp)
    factory = RowFactory(bp.schema, opts.seed, invariants)
    try:
        rows = factory.seed_rows(opts.scale)
    except SeedError as e:  # the blueprint's invariants cannot be met: the author's error
        raise BlueprintError(bp.path, e.where, e.message, _line(bp, e.where)) from None
    db = DomainDB(bp.schema)
    db.load(rows)
    base = db.snapshot()
    ctx = ToolContext(bp.schema.clock)
    tools = []
    for i, op in enumerate(bp.operations):
        tools.append(implement_and_test(op, bp, backend, db, base, factory, ctx, opts, invariants))
        if report:
            report({"tool": op.name, "done": i + 1, "total": len(bp.operations), "status": tools[-1].status})
    passed = [op for op, rec in zip(bp.operations, tools, strict=True) if rec.status == "passed"]
    edges = build_edges(passed, bp.schema)
    db.close()
    return Domain(
        domain=bp.schema, rows=rows, tools=tools, edges=edges, blueprint_text=bp.text,
        provenance=Provenance(backend=backend.name, seed=opts.seed, blueprint=bp.path,
                              blueprint_sha256=bp.sha256, scaleenv_version=__version__),
        seconds=time.perf_counter() - t0,
    )


def _job(report: Callable[[Any], None], bp: Blueprint, opts: SynthOptions, backend: Backend) -> str:
    return synthesize(bp, opts, backend, report).model_dump_json()


def synthesize_many(blueprints: list[Blueprint], opts: SynthOptions | None = None, backend: Backend | None = None,
                    workers: int = 2, limits: Limits | None = None,
                    on_progress: Callable[[str, Any], None] | None = None) -> dict[str, Domain | str]:
    """Synthesize each blueprint in an isolated process. Returns name -> Domain, or an error text."""
    opts = opts or SynthOptions()
    backend = backend or ProceduralBackend()
    limits = limits or Limits(memory_mb=2048, wall_seconds=600)
    jobs = [(bp.name, _job, (bp, opts, backend)) for bp in blueprints]
    res = run_isolated_many(jobs, workers=workers, limits=limits, on_progress=on_progress)
    out: dict[str, Domain | str] = {}
    for bp in blueprints:
        r = res[bp.name]
        out[bp.name] = Domain.model_validate_json(r.value) if r.ok else r.error
    return out
