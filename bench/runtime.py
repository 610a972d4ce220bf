"""Runtime cost of environments at growing database sizes.

Synthesizes bike_rental once (its tools and tests), then for seed data scaled to about 1k, 10k
and 100k rows generates tasks and measures, with the oracle agent on one core:
reset / step / evaluate medians (µs), whole oracle episodes per second (reset + steps +
evaluate), and memory per live environment (RSS growth over many live environments).

    .venv/bin/python bench/runtime.py [--json] [--domain bike_rental] [--sizes 1000,10000,100000]

The last line of output is one JSON object:
{"sizes": [{"rows", "reset_us_p50", "step_us_p50", "evaluate_us_p50", "episodes_per_s", "env_mem_kib", ...}]}
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.seed import RowFactory  # noqa: E402
from core.runtime.env import DomainRuntime, Environment  # noqa: E402
from core.spec.blueprint import load_blueprint  # noqa: E402
from core.synthesis.synth import synthesize  # noqa: E402
from core.tasks.generator import TaskGenerator, oracle_messages  # noqa: E402


def trim() -> None:
    """Hand freed heap back to the OS so RSS growth measures what live environments hold."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def measure(domain, rows_wanted: int, n_tasks: int, seconds: float, envs: int) -> dict:
    base_rows = sum(len(r) for r in domain.rows.values())
    scale = rows_wanted / base_rows
    t0 = time.perf_counter()
    rows = RowFactory(domain.domain, 0).seed_rows(scale)
    scaled = domain.model_copy(update={"rows": rows})
    gen_s = time.perf_counter() - t0
    runtime = DomainRuntime(scaled)
    tasks, stats = TaskGenerator(scaled, runtime, seed=1).generate(n_tasks, max_attempts=n_tasks * 10)
    env = Environment(runtime)
    resets, steps, evals = [], [], []
    msgs = {t.id: oracle_messages(t) for t in tasks}
    for t in tasks:  # warm: load every task once (first-time deserialize is measured separately)
        env.reset(t)
    first = []
    for t in tasks[:20]:
        env._loaded = None
        a = time.perf_counter()
        env.reset(t)
        first.append(time.perf_counter() - a)
    for _ in range(3):
        for t in tasks:
            env.reset(t)
            for s in t.chain:
                a = time.perf_counter()
                env.step({"name": s.tool, "arguments": s.args})
                steps.append(time.perf_counter() - a)
            a = time.perf_counter()
            r = env.evaluate(msgs[t.id])
            evals.append(time.perf_counter() - a)
            assert r.reward == 1.0, r.reasons
            a = time.perf_counter()
            env.reset(t)
            resets.append(time.perf_counter() - a)
    # episodes per second: one environment per task, as a trainer would hold them
    pool = {t.id: Environment(runtime, t) for t in tasks}
    done, a = 0, time.perf_counter()
    while time.perf_counter() - a < seconds:
        for t in tasks:
            e = pool[t.id]
            e.reset(t)
            for s in t.chain:
                e.step({"name": s.tool, "arguments": s.args})
            e.evaluate(msgs[t.id])
            done += 1
    eps = done / (time.perf_counter() - a)
    for e in pool.values():
        e.close()
    # memory per live environment: RSS growth while holding many, each reset to a task
    trim()
    before = rss_kib()
    live = [Environment(runtime, tasks[i % len(tasks)]) for i in range(envs)]
    for i, e in enumerate(live):
        t = tasks[i % len(tasks)]
        for s in t.chain:
            e.step({"name": s.tool, "arguments": s.args})
    trim()
    mem = (rss_kib() - before) / envs
    for e in live:
        e.close()
    env.close()
    return {"rows": sum(len(r) for r in rows.values()), "tasks": len(tasks),
            "reset_us_p50": round(p50(resets) * 1e6, 1), "reset_new_task_us_p50": round(p50(first) * 1e6, 1),
            "step_us_p50": round(p50(steps) * 1e6, 1), "evaluate_us_p50": round(p50(evals) * 1e6, 1),
            "episodes_per_s": round(eps, 1), "env_mem_kib": round(mem, 1),
            "snapshot_kib": round(len(runtime.seed_snapshot) / 1024, 1), "seed_rows_s": round(gen_s, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--domain", default="bike_rental")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=3.0, help="time spent counting episodes per size")
    ap.add_argument("--envs", type=int, default=200, help="live environments for the memory figure")
    a = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    domain = synthesize(load_blueprint(root / "sample_domains" / f"{a.domain}.yaml"))
    out = []
    for size in [int(s) for s in a.sizes.split(",")]:
        row = measure(domain, size, a.tasks, a.seconds, a.envs if size <= 20_000 else max(10, a.envs // 10))
        out.append(row)
        if not a.json:
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(json.dumps({"domain": a.domain, "sizes": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
