"""Mutation testing of the engine itself: would the test suite notice a bug in core/?

Runs mutmut (``pip install -e '.[mutation]'``; configured in ``[tool.mutmut]`` of pyproject.toml)
over the engine modules that decide rewards, state, episodes, the graph, the sandbox and task
verification, then scores each module: killed / (mutants - equivalent). A mutant counts as killed
when a test fails, times out or crashes. Mutants listed in ``bench/equivalent_mutants.txt``
(one ``name  reason`` per line) are left out of the score; every other survivor is printed.

    make mutants                                   # the whole run, then the scores
    .venv/bin/python bench/engine_mutation.py      # the same
    .venv/bin/python bench/engine_mutation.py --scores-only   # re-score the last run
    .venv/bin/python bench/engine_mutation.py core/synthesis/graph.py   # one module

mutmut keeps its work in ``mutants/`` (git-ignored) and re-tests only what changed since the last
run. The last line printed is ``{"modules": {path: {"mutants", "killed", "equivalent", "score"}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "bench" / "equivalent_mutants.txt"

# module -> the functions scored (None: all of them). Task generation is big; what the issue asks
# to be mutation-tested is its verification: the ground truth, the checks and the de-duplication.
MODULES: dict[str, tuple[str, ...] | None] = {
    "core/evaluation/reward.py": None,
    "core/evaluation/claims.py": None,
    "core/data/db.py": None,
    "core/runtime/env.py": None,
    "core/synthesis/graph.py": None,
    "core/runtime/sandbox.py": None,
    "core/tasks/generator.py": ("_record", "_identified", "_guessable", "_values", "generate", "oracle_messages"),
}
TARGETS = {"core/evaluation/reward.py": 0.95}  # the rest: 0.85
DETECTED = {1, 3, 24, -24, 152, 255, 36, -11, -9}  # failed, pytest error, timeout, crash


def patterns(module: str) -> list[str]:
    """mutmut mutant-name globs for a module's scored functions."""
    dotted = module.removesuffix(".py").replace("/", ".")
    funcs = MODULES[module]
    if funcs is None:
        return [f"{dotted}.*"]
    # functions are x_NAME__mutmut_N; methods are xǁClassǁNAME__mutmut_N
    return [p for f in funcs for p in (f"{dotted}.x_{f}__mutmut_*", f"{dotted}.xǁ*ǁ{f}__mutmut_*")]


def in_scope(module: str, name: str) -> bool:
    funcs = MODULES[module]
    if funcs is None:
        return True
    fn = name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    fn = fn.rsplit("ǁ", 1)[-1] if "ǁ" in fn else fn.removeprefix("x_")
    return fn in funcs


def equivalents() -> dict[str, str]:
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.strip().partition(" ")
                out[name] = why.strip()
    return out


def score(modules: list[str]) -> dict:
    eq = equivalents()
    report = {}
    for m in modules:
        meta = ROOT / "mutants" / f"{m}.meta"
        if not meta.exists():
            raise SystemExit(f"engine_mutation: error: {meta.relative_to(ROOT)} is missing: run without --scores-only")
        codes = {k: v for k, v in json.loads(meta.read_text())["exit_code_by_key"].items() if in_scope(m, k)}
        unchecked = [k for k, v in codes.items() if v is None]
        survivors = sorted(k for k, v in codes.items() if v is not None and v not in DETECTED and k not in eq)
        equiv = sum(k in eq and codes[k] is not None and codes[k] not in DETECTED for k in codes)
        killed = sum(v in DETECTED for v in codes.values())
        total = len(codes) - equiv - len(unchecked)
        s = killed / total if total else 0.0
        target = TARGETS.get(m, 0.85)
        print(f"{m:26} {killed:4}/{total:<4} killed  {equiv:3} equivalent  score {s:.3f}  "
              f"{'ok' if s >= target else 'BELOW ' + str(target)}"
              + (f"  ({len(unchecked)} not checked)" if unchecked else ""))
        for k in survivors:
            print(f"    survived: {k}")
        report[m] = {"mutants": len(codes), "killed": killed, "equivalent": equiv, "score": round(s, 4),
                     "survived": len(survivors)}
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"modules to test (default: {' '.join(MODULES)})")
    ap.add_argument("--scores-only", action="store_true", help="score the last run without running mutmut")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        print(f"engine_mutation: error: not a scored module: {', '.join(unknown)} (one of {', '.join(MODULES)})",
              file=sys.stderr)
        return 2
    modules = args.modules or list(MODULES)
    if not args.scores_only:
        mutmut = Path(sys.executable).parent / "mutmut"
        if not mutmut.exists():
            print("engine_mutation: error: mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
            return 2
        names = [p for m in modules for p in patterns(m)]
        done = subprocess.run([str(mutmut), "run", "--max-children", str(args.max_children), *names], cwd=ROOT)
        if done.returncode != 0:
            print(f"engine_mutation: error: mutmut exited {done.returncode}", file=sys.stderr)
            return 1
    print(json.dumps({"modules": score(modules)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
