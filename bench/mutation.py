"""Mutation testing of the procedural tests: do they catch broken tool code?

For every tool of every sample domain, the generated source is mutated one change at a time —
drop an effect, flip a comparison, skip a requirement, skip a not-found check, return the
wrong row, change a literal, swap an arithmetic operator, drop a filter — and the tool's
procedural tests are run against each mutant. A mutant is killed when a test fails or the
sandbox refuses it. Prints a line per domain, then ``{"mutants": N, "killed": K}`` last; exits 1
when a domain could not be run.

    .venv/bin/python bench/mutation.py [--domain NAME] [--per-tool N] [--seed S] [--survivors]
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.db import DomainDB  # noqa: E402
from core.data.seed import RowFactory  # noqa: E402
from core.runtime.context import ToolContext  # noqa: E402
from core.runtime.sandbox import Limits, PolicyViolation, load_tool, run_isolated_many  # noqa: E402
from core.spec.blueprint import load_blueprint  # noqa: E402
from core.synthesis.codegen import compile_operation  # noqa: E402
from core.synthesis.proctest import CaseBuilder, test_tool  # noqa: E402

FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt}
EDGE = {ast.GtE: ast.Gt, ast.Gt: ast.GtE, ast.LtE: ast.Lt, ast.Lt: ast.LtE}
ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult}


def _is_call(node: ast.AST, attr: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr \
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "db"


def _raises(stmt: ast.stmt, name: str) -> bool:
    return isinstance(stmt, ast.If) and len(stmt.body) == 1 and isinstance(stmt.body[0], ast.Raise) and \
        isinstance(stmt.body[0].exc, ast.Call) and getattr(stmt.body[0].exc.func, "id", "") == name


def mutants(source: str) -> list[tuple[str, str]]:
    """(description, mutated source) for every mutation site in a tool's source."""
    tree = ast.parse(source)
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    out: list[tuple[str, str]] = []

    def emit(desc: str, t: ast.AST) -> None:
        ast.fix_missing_locations(t)
        out.append((desc, ast.unparse(t)))

    body = fn.body
    for i, stmt in enumerate(body):
        # statement deletions: effects, requirement checks, not-found checks
        kind = None
        if isinstance(stmt, ast.Expr) and any(_is_call(stmt.value, a) for a in ("update", "delete", "insert")):
            kind = "drop effect"
        elif isinstance(stmt, ast.Assign) and _is_call(stmt.value, "insert"):
            kind = "drop insert"
        elif isinstance(stmt, ast.For):
            kind = "drop bulk update"
        elif _raises(stmt, "PreconditionFailed"):
            kind = "skip requirement"
        elif _raises(stmt, "NotFound"):
            kind = "skip not-found check"
        if kind:
            t = copy.deepcopy(tree)
            t.body[0].body.pop(i)
            if kind == "drop insert":  # keep the name bound so later lines still run
                t.body[0].body.insert(i, ast.parse("inserted = {}").body[0])
            if not t.body[0].body:
                t.body[0].body.append(ast.Pass())
            emit(f"{kind} (line {stmt.lineno})", t)

    # expression-level mutations, addressed by their index in a walk of the function
    nodes = list(ast.walk(fn))
    for idx, node in enumerate(nodes):
        def mutate(change, desc: str, idx=idx) -> None:
            t = copy.deepcopy(tree)
            target = list(ast.walk(t.body[0]))[idx]
            change(target)
            emit(desc, t)

        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in FLIP:
            op = type(node.ops[0])
            mutate(lambda n, op=op: n.ops.__setitem__(0, FLIP[op]()), f"flip {op.__name__} (line {node.lineno})")
            if op in EDGE:
                mutate(lambda n, op=op: n.ops.__setitem__(0, EDGE[op]()), f"edge {op.__name__} (line {node.lineno})")
        elif isinstance(node, ast.BinOp) and type(node.op) in ARITH:
            op = type(node.op)
            mutate(lambda n, op=op: setattr(n, "op", ARITH[op]()), f"swap {op.__name__} (line {node.lineno})")
        elif isinstance(node, ast.Call) and any(_is_call(node, a) for a in ("count", "select", "sum")) \
                and node.keywords:
            mutate(lambda n: n.keywords.pop(), f"drop filter (line {node.lineno})")
        elif isinstance(node, ast.Dict) and node.values:
            for k in range(len(node.values)):
                v = node.values[k]
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and len(v.value) > 1:
                    mutate(lambda n, k=k: n.values.__setitem__(k, ast.Constant(n.values[k].value + "_x")),
                           f"change literal (line {node.lineno})")
                elif isinstance(v, ast.Constant) and isinstance(v.value, int | float) and not isinstance(v.value, bool):
                    mutate(lambda n, k=k: n.values.__setitem__(k, ast.Constant(n.values[k].value + 1)),
                           f"change number (line {node.lineno})")
                elif not isinstance(v, ast.Constant):
                    mutate(lambda n, k=k: n.values.__setitem__(k, ast.Constant(None)),
                           f"null a written value (line {node.lineno})")
        elif isinstance(node, ast.Return) and node.value is not None:
            others = sorted({a.targets[0].id for a in ast.walk(fn) if isinstance(a, ast.Assign)
                             and isinstance(a.targets[0], ast.Name) and a.targets[0].id not in ("rows",)})
            src = ast.unparse(node.value)
            for name in others:
                if name != src:
                    mutate(lambda n, name=name: setattr(n, "value", ast.Name(name, ast.Load())),
                           f"return {name} instead (line {node.lineno})")
                    break
    return out


def run_domain(report, path: str, seed: int, per_tool: int, survivors: bool) -> dict:
    bp = load_blueprint(path)
    factory = RowFactory(bp.schema, seed)
    db = DomainDB(bp.schema)
    db.load(factory.seed_rows())
    base = db.snapshot()
    ctx = ToolContext(bp.schema.clock)
    rng = random.Random(seed)
    n = k = 0
    alive: list[str] = []
    for op in bp.operations:
        cases, _ = CaseBuilder(op, base, db, factory, ctx, seed).build()
        src = compile_operation(op, bp.schema)
        ms = mutants(src)
        if per_tool and len(ms) > per_tool:
            ms = rng.sample(ms, per_tool)
        for desc, msrc in ms:
            n += 1
            try:
                fn = load_tool(msrc, op.name)
            except PolicyViolation:
                k += 1
                continue
            results = test_tool(op, fn, cases, db, ctx, seconds=1.0)
            if any(not r.passed for r in results):
                k += 1
            elif survivors:
                alive.append(f"{op.name}: {desc}")
    return {"domain": bp.name, "mutants": n, "killed": k, "survivors": alive}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", action="append", help="only this sample domain (repeatable)")
    ap.add_argument("--per-tool", type=int, default=0, help="sample at most N mutants per tool (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--survivors", action="store_true", help="list the mutants no test killed")
    a = ap.parse_args()
    root = Path(__file__).resolve().parent.parent / "sample_domains"
    paths = sorted(root.glob("*.yaml"))
    if a.domain:
        unknown = sorted(set(a.domain) - {p.stem for p in paths})
        if unknown:
            ap.error(f"no sample domain {', '.join(unknown)}")
        paths = [p for p in paths if p.stem in a.domain]
    t0 = time.perf_counter()
    jobs = [(p.stem, run_domain, (str(p), a.seed, a.per_tool, a.survivors)) for p in paths]
    res = run_isolated_many(jobs, workers=a.workers, limits=Limits(memory_mb=2048, wall_seconds=1800))
    n = k = failed = 0
    for p in paths:
        r = res[p.stem]
        if not r.ok:
            print(f"{p.stem}: failed: {r.error}", file=sys.stderr)
            failed += 1
            continue
        d = r.value
        n += d["mutants"]
        k += d["killed"]
        print(f"{d['domain']:24} mutants {d['mutants']:5}  killed {d['killed']:5}  "
              f"score {d['killed'] / max(d['mutants'], 1):.3f}")
        for s in d["survivors"]:
            print(f"    survived: {s}")
    print(f"total {n} mutants, {k} killed, score {k / max(n, 1):.4f}, {time.perf_counter() - t0:.1f} s")
    print(json.dumps({"mutants": n, "killed": k}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
