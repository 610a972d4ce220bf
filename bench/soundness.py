"""Reward soundness: perturbed oracle trajectories must score 0 when the outcome really changes.

For every task, the oracle trajectory is perturbed — a step dropped, an argument swapped for a
distractor's (another record of the same table, preferring ones planted in the task), a stray
write added, a required value told wrong, or nothing done at all — and replayed. A perturbation
*changes the outcome* when the final state differs from the ground truth's (canonical state
hash) or a required value is no longer told. Prints a summary per kind, then
``{"perturbed": N, "scored_zero": Z}`` last, counting only outcome-changing perturbations.

    .venv/bin/python bench/soundness.py [--workspace DIR] [-n TASKS_PER_DOMAIN] [--seed S]
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


def _wrong(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int | float):
        return round(v + 13.37, 2)
    return f"not-{v}"


def perturbations(task, tasks, rng):
    """(kind, calls, messages) variants of the oracle trajectory."""
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
        text = msgs[-1]["content"].replace(f": {rv.value}", f": {_wrong(rv.value)}")
        if value_mentioned(rv.value, text):
            continue  # the value still appears elsewhere in the message
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
    escaped = []
    for task in tasks:
        for kind, calls, msgs in perturbations(task, tasks, rng):
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
                escaped.append(f"{task.id}: {kind}: {calls[-1] if calls else ''}")
    env.close()
    return {"domain": domain.name, "perturbed": n, "scored_zero": z, "kinds": dict(kinds),
            "zero_kinds": dict(zero_kinds), "escaped": escaped}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", help="use this workspace's domains and tasks (default: build a fresh one)")
    ap.add_argument("-n", type=int, default=50, help="tasks per domain when building a fresh workspace")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    t0 = time.perf_counter()
    if a.workspace:
        ws = Workspace(a.workspace)
        names = ws.domain_names()
        data = {n: (ws.load_domain(n).model_dump_json(), [t.model_dump_json() for t in ws.load_tasks(n)])
                for n in names}
    else:
        root = Path(__file__).resolve().parent.parent / "sample_domains"
        bps = [load_blueprint(p) for p in sorted(root.glob("*.yaml"))]
        doms = synthesize_many(bps, workers=a.workers)
        data = {}
        for name, d in doms.items():
            if isinstance(d, str):
                print(f"{name}: synthesis failed: {d}", file=sys.stderr)
                continue
            tasks, _ = TaskGenerator(d, seed=a.seed).generate(a.n)
            data[name] = (d.model_dump_json(), [t.model_dump_json() for t in tasks])
    jobs = [(n, check_domain, (dj, tj, a.seed)) for n, (dj, tj) in data.items()]
    res = run_isolated_many(jobs, workers=a.workers, limits=Limits(memory_mb=4096, wall_seconds=1800))
    n = z = 0
    kinds: Counter = Counter()
    zk: Counter = Counter()
    for name in data:
        r = res[name]
        if not r.ok:
            print(f"{name}: failed: {r.error}", file=sys.stderr)
            continue
        d = r.value
        n += d["perturbed"]
        z += d["scored_zero"]
        kinds.update(d["kinds"])
        zk.update(d["zero_kinds"])
        print(f"{name:24} perturbed {d['perturbed']:5}  scored zero {d['scored_zero']:5}")
        for e in d["escaped"]:
            print(f"    scored although changed: {e}")
    for k in sorted(kinds):
        print(f"  {k:20} {zk[k]}/{kinds[k]}")
    print(f"total {z}/{n} = {z / max(n, 1):.4f} in {time.perf_counter() - t0:.1f} s")
    print(json.dumps({"perturbed": n, "scored_zero": z}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
