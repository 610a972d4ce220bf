"""Benchmark of Phase 1: how long `scaleenv synth --all --json` takes into a fresh workspace.

Each run uses a new temporary workspace and the installed command, so it measures what a user
waits for (interpreter start, blueprint loading, seeding, codegen, procedural tests, graph,
store). Prints one line per run, the median, and last a JSON object:

    {"runs": [s1, s2, ...], "median_s": m, "domains": n, "tools": t, "tools_passed": p}

    .venv/bin/python bench/synth.py [--runs 3] [--seed 0] [--workers 2] [--domains bike_rental,marina]

``--domains`` synthesizes only those sample domains (their blueprint files instead of ``--all``),
for a quick run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command() -> list[str]:
    """The installed `scaleenv` next to this interpreter, else the CLI module."""
    exe = Path(sys.executable).parent / "scaleenv"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("scaleenv")
    return [found] if found else [sys.executable, "-m", "scaleenv_tui.cli"]


def one_run(seed: int, workers: int | None, blueprints: list[Path] | None = None) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-") as ws:
        which = [str(p) for p in blueprints] if blueprints else ["--all"]
        argv = [*command(), "synth", *which, "--json", "--workspace", ws, "--seed", str(seed)]
        if workers:
            argv += ["--workers", str(workers)]
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"scaleenv synth failed with exit code {p.returncode}")
    return elapsed, json.loads(p.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="number of runs (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="synthesis seed (default 0)")
    ap.add_argument("--workers", type=int, default=None, help="parallel domains (default: the CLI's)")
    ap.add_argument("--domains", help="only these sample domains, comma-separated (default: all of them)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    blueprints = None
    if args.domains:
        blueprints = [ROOT / "sample_domains" / f"{name}.yaml" for name in args.domains.split(",")]
        missing = [p.stem for p in blueprints if not p.exists()]
        if missing:
            ap.error(f"no sample domain {', '.join(missing)}")

    runs: list[float] = []
    last: dict = {}
    for i in range(1, args.runs + 1):
        elapsed, doc = one_run(args.seed, args.workers, blueprints)
        runs.append(round(elapsed, 3))
        last = doc
        ds = doc["domains"]
        tools = sum(d["tools"] for d in ds)
        passed = sum(d["tools_passed"] for d in ds)
        print(f"run {i}: {elapsed:.2f} s wall ({doc['seconds']:.2f} s reported by synth), "
              f"{len(ds)} domains, {passed}/{tools} tools passed", flush=True)
    median = round(statistics.median(runs), 3)
    print(f"median: {median:.2f} s over {len(runs)} run(s)")
    ds = last["domains"]
    print(json.dumps({"runs": runs, "median_s": median, "domains": len(ds),
                      "tools": sum(d["tools"] for d in ds), "tools_passed": sum(d["tools_passed"] for d in ds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
