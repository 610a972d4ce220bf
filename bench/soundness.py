"""Reward soundness: perturbed oracle trajectories must score 0 when the outcome really changes.

For every task, the oracle trajectory is perturbed — a step dropped, an argument swapped for a
distractor's (another record of the same table, preferring ones planted in the task), a stray
write added, a required value told wrong, or nothing done at all — and replayed. A perturbation
*changes the outcome* when the final state differs from the ground truth's (canonical state
hash) or a required value is no longer told. Prints a summary per kind, then
``{"perturbed": N, "scored_zero": Z, "domains": D, "kinds": {...}, "wrong_values": {...}}`` last,
counting only outcome-changing perturbations. Exits 1 when a domain could not be checked.

A wrong value is another value of the same column in the database (another id, status or price),
never one that still states the right value; failing that, a changed value that does not contain
the right one as a word. ``wrong_values`` counts them by kind of value (string, number, bool) and
source, and the ones skipped because the right value still appears elsewhere in the message.

    .venv/bin/python bench/soundness.py [--workspace DIR] [-n TASKS_PER_DOMAIN] [--seed S]
                                        [--domains bike_rental,marina] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.blueprint import load_blueprint  # noqa: E402
from core.env import DomainRuntime, Environment  # noqa: E402
from core.reward import value_mentioned  # noqa: E402
from core.sandbox import Limits, run_isolated_many  # noqa: E402
from core.store import Workspace  # noqa: E402
from core.synth import synthesize_many  # noqa: E402
from core.tasks import TaskGenerator, oracle_messages  # noqa: E402


def column_values(domain, task) -> dict[str, list]:
    """``table.column`` -> the distinct values stored in that column (seed rows and the task's own rows)."""
    out: dict[str, dict] = {}
    for rows in (domain.rows, task.initial.upsert):
        for table, trows in rows.items():
            for r in trows:
                for col, x in r.items():
                    if x is not None:
                        out.setdefault(f"{table}.{col}", {})[repr(x)] = x
    return {k: list(v.values()) for k, v in out.items()}


def kind_of(v) -> str:
    if isinstance(v, bool):
        return "bool"
    return "number" if isinstance(v, int | float) else "string"


def _differs(right, x) -> bool:
    """Is ``x`` a different value of the same kind that does not state ``right`` (so telling it is wrong)?"""
    if kind_of(x) != kind_of(right) or value_mentioned(right, str(x)):
        return False
    return not isinstance(right, int | float) or isinstance(right, bool) or abs(float(x) - float(right)) >= 0.005


def wrong_value(rv, values: dict[str, list], rng) -> tuple[object, str]:
    """A wrong value for a required value, and where it came from.

    Preferably another value of the same column in the database (another rider's id, another
    status, another price): what an agent that read the wrong row would say. Otherwise a
    changed value that does not contain the right one as a word (``bk-0001`` -> ``bk-0001x``)."""
    v = rv.value
    if isinstance(v, bool):
        return (not v), "negated"
    pool = [x for x in values.get(rv.label, []) if _differs(v, x)]
    if pool:
        return rng.choice(sorted(pool, key=repr)), "same column"
    if isinstance(v, int | float):
        return round(v + 13.37, 2), "changed"
    return f"{v}x", "changed"


def perturbations(task, tasks, rng, values: dict[str, list] | None = None, wrong: Counter | None = None):
    """(kind, calls, messages) variants of the oracle trajectory.

    ``values`` maps ``table.column`` to the values stored there (see :func:`column_values`);
    ``wrong`` counts the wrong-value variants by the kind of value and where the wrong one came from."""
    values = values or {}
    wrong = wrong if wrong is not None else Counter()
    calls = [{"name": s.tool, "arguments": dict(s.args)} for s in task.chain]
    msgs = oracle_messages(task)
    out = [("do nothing", [], msgs[:1] + [{"role": "assistant", "content": "Sorry, I can't help with that."}])]
    for i in range(len(calls)):
        out.append(("drop a step", calls[:i] + calls[i + 1:], msgs))
    planted = {t: [r for r in rows] for t, rows in task.initial.upsert.items()}
    for i, s in enumerate(task.chain):
        for p, v in s.args.items():
            if not isinstance(v, str) or "-" not in v:
                continue
            prefix = v.rsplit("-", 1)[0]
            cands = [r for rows in planted.values() for r in rows for k, x in r.items()
                     if k == p and x != v and isinstance(x, str) and x.startswith(prefix + "-")]
            other = rng.choice(cands)[p] if cands else None
            if other is None:
                pool = [x for t in tasks for st in t.chain for k, x in st.args.items()
                        if k == p and x != v and isinstance(x, str)]
                other = rng.choice(pool) if pool else None
            if other is not None:
                c2 = [dict(c, arguments=dict(c["arguments"])) for c in calls]
                c2[i]["arguments"][p] = other
                out.append(("swap an argument", c2, msgs))
    others = [st for t in tasks if t.id != task.id for st in t.chain if st.role == "goal"]
    if others:
        st = rng.choice(others)
        out.append(("add a stray write", calls + [{"name": st.tool, "arguments": dict(st.args)}], msgs))
    for rv in task.ground_truth.communicate:
        bad, source = wrong_value(rv, values, rng)
        text = msgs[-1]["content"].replace(f": {rv.value}", f": {bad}")
        if value_mentioned(rv.value, text):
            wrong[f"skipped {kind_of(rv.value)}"] += 1  # the value still appears elsewhere in the message
            continue
        wrong[f"{kind_of(rv.value)} ({source})"] += 1
        out.append(("tell a wrong value", calls, msgs[:1] + [{"role": "assistant", "content": text}]))
    return out


def check_domain(report, domain_json: str, tasks_json: list[str], seed: int) -> dict:
    from core.models import Domain
    from core.taskmodel import Task

    domain = Domain.model_validate_json(domain_json)
    tasks = [Task.model_validate_json(t) for t in tasks_json]
    runtime = DomainRuntime(domain)
    env = Environment(runtime)
    rng = random.Random(seed)
    n = z = 0
    kinds: Counter = Counter()
    zero_kinds: Counter = Counter()
    wrong: Counter = Counter()
    escaped = []
    for task in tasks:
        for kind, calls, msgs in perturbations(task, tasks, rng, column_values(domain, task), wrong):
            env.reset(task)
            for c in calls:
                env.step(c)
            text = "\n".join(str(m.get("content")) for m in msgs if m["role"] == "assistant")
            told = all(value_mentioned(rv.value, text) for rv in task.ground_truth.communicate)
            changed = env.state_hash() != task.ground_truth.final_hash or not told
            if not changed:
                continue
            r = env.evaluate(msgs)
            n += 1
            kinds[kind] += 1
            if r.reward == 0.0:
                z += 1
                zero_kinds[kind] += 1
            elif len(escaped) < 5:
                what = msgs[-1]["content"] if kind == "tell a wrong value" else (calls[-1] if calls else "")
                escaped.append(f"{task.id}: {kind}: {what}")
    env.close()
    return {"domain": domain.name, "perturbed": n, "scored_zero": z, "kinds": dict(kinds),
            "zero_kinds": dict(zero_kinds), "wrong_values": dict(wrong), "escaped": escaped}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", help="use this workspace's domains and tasks (default: build a fresh one)")
    ap.add_argument("-n", type=int, default=50, help="tasks per domain when building a fresh workspace")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--domains", help="only these sample domains, comma-separated (default: all 16)")
    a = ap.parse_args(argv)
    wanted = set(a.domains.split(",")) if a.domains else None
    t0 = time.perf_counter()
    failed = 0
    if a.workspace:
        ws = Workspace(a.workspace, create=False)
        names = [n for n in ws.domain_names() if wanted is None or n in wanted]
        data = {n: (ws.load_domain(n).model_dump_json(), [t.model_dump_json() for t in ws.load_tasks(n)])
                for n in names}
    else:
        root = Path(__file__).resolve().parent.parent / "sample_domains"
        paths = [p for p in sorted(root.glob("*.yaml")) if wanted is None or p.stem in wanted]
        if wanted is not None and len(paths) != len(wanted):
            ap.error(f"no sample domain {', '.join(sorted(wanted - {p.stem for p in paths}))}")
        doms = synthesize_many([load_blueprint(p) for p in paths], workers=a.workers)
        data = {}
        for name, d in doms.items():
            if isinstance(d, str):
                print(f"{name}: synthesis failed: {d}", file=sys.stderr)
                failed += 1
                continue
            tasks, _ = TaskGenerator(d, seed=a.seed).generate(a.n)
            data[name] = (d.model_dump_json(), [t.model_dump_json() for t in tasks])
    jobs = [(n, check_domain, (dj, tj, a.seed)) for n, (dj, tj) in data.items()]
    res = run_isolated_many(jobs, workers=a.workers, limits=Limits(memory_mb=4096, wall_seconds=1800))
    n = z = 0
    kinds: Counter = Counter()
    zk: Counter = Counter()
    wrong: Counter = Counter()
    for name in data:
        r = res[name]
        if not r.ok:
            print(f"{name}: failed: {r.error}", file=sys.stderr)
            failed += 1
            continue
        d = r.value
        n += d["perturbed"]
        z += d["scored_zero"]
        kinds.update(d["kinds"])
        zk.update(d["zero_kinds"])
        wrong.update(d["wrong_values"])
        print(f"{name:24} perturbed {d['perturbed']:5}  scored zero {d['scored_zero']:5}")
        for e in d["escaped"]:
            print(f"    scored although changed: {e}")
    for k in sorted(kinds):
        print(f"  {k:20} {zk[k]}/{kinds[k]}")
    print("  wrong values told: " + ", ".join(f"{k} {v}" for k, v in sorted(wrong.items())))
    print(f"total {z}/{n} = {z / max(n, 1):.4f} in {time.perf_counter() - t0:.1f} s")
    print(json.dumps({"perturbed": n, "scored_zero": z, "domains": len(data) - failed,
                      "kinds": {k: {"perturbed": kinds[k], "scored_zero": zk[k]} for k in sorted(kinds)},
                      "wrong_values": dict(sorted(wrong.items()))}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
