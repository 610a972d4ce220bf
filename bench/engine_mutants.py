"""Planted engine bugs: does the test suite notice each one?

Each mutant below is a plausible bug in ``core/`` (one textual change, each checked to change
behaviour when it was planted). For each, the project is copied to a temporary folder, the change
is applied there (never in the working tree), and pytest runs on the copy. A mutant is *killed*
when the suite fails. These are the regression cases of the tests issue: 14 of them survived the
suite it was filed against; the last two were already caught.

    .venv/bin/python bench/engine_mutants.py                 # every mutant, whole suite
    .venv/bin/python bench/engine_mutants.py --list          # names and what each breaks
    .venv/bin/python bench/engine_mutants.py reward_roles -- tests/test_reward.py   # one, some tests

Prints one line per mutant, then ``{"mutants": N, "killed": K, "survived": [...]}`` last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (file, old text, new text, what the bug does)
MUTANTS: dict[str, tuple[str, str, str, str]] = {
    "reward_roles": (
        "core/evaluation/reward.py",
        'if isinstance(m, dict) and m.get("role") == "assistant")',
        "if isinstance(m, dict))",
        "every message role counts as telling the user (an agent that never speaks scores)"),
    "reward_null_equals_anything": (
        "core/evaluation/reward.py",
        "return expected is None and actual is None",
        "return True",
        "null equals any value"),
    "reward_deletions_unchecked": (
        "core/evaluation/reward.py",
        "                if actual is not None:\n                    reasons.append(f\"{t.name}[{key}]: should have been deleted\")",
        "                if False:\n                    reasons.append(f\"{t.name}[{key}]: should have been deleted\")",
        "expected deletions are not checked"),
    "reward_money_tolerance": (
        "core/evaluation/reward.py",
        "return abs(float(expected) - float(actual)) < 0.005",
        "return abs(float(expected) - float(actual)) < 0.05",
        "money tolerance 0.005 -> 0.05"),
    "reward_digits_in_ids": (
        "core/evaluation/reward.py",
        '_NUMBER = re.compile(r"(?<![\\w.\\-])-?\\d[\\d,]*(?:\\.\\d+)?(?!\\w|\\.\\d|-\\d)")',
        '_NUMBER = re.compile(r"-?\\d[\\d,]*(?:\\.\\d+)?")',
        "digits inside ids and dates count as stated numbers (RDR-0030 mentions 30)"),
    "reward_bool_substring": (
        "core/evaluation/reward.py",
        'return ("yes" if value else "no") in words or ("true" if value else "false") in words',
        'return ("yes" if value else "no") in text.casefold() or ("true" if value else "false") in words',
        "booleans matched as substrings (\"no\" inside \"not\" or \"know\")"),
    "db_last_preimage": (
        "core/data/db.py",
        "        if key not in pre:\n            pre[key] = self.get(table, key) if existed else None",
        "        if True:\n            pre[key] = self.get(table, key) if existed else None",
        "the undo log keeps the last pre-image instead of the first"),
    "env_calls_not_cleared": (
        "core/runtime/env.py",
        "        self.task = task\n        self.calls = []\n",
        "        self.task = task\n",
        "env.calls is not cleared on reset"),
    "env_rejected_tools_loaded": (
        "core/runtime/env.py",
        'if rec.status == "passed":',
        "if rec.implementation.source:",
        "rejected tools are loaded into the runtime and offered to agents"),
    "sandbox_real_modules": (
        "core/runtime/sandbox.py",
        "    mod = _proxy(name)\n",
        "    mod = __import__(name)\n",
        "tool code gets the real modules, not the stand-ins (json.codecs.open reads files)"),
    "tasks_distractors_unchecked": (
        "core/tasks/generator.py",
        "ok = self._identified(db, idents)",
        "ok = True",
        "distractors are not re-checked for uniqueness"),
    "tasks_duplicate_chains": (
        "core/tasks/generator.py",
        "if sig in sigs:",
        "if False:",
        "duplicate chains are kept"),
    "graph_add_enables_less": (
        "core/synthesis/graph.py",
        'if how == "+=" and node.op in (">", ">=", "!="):',
        'if how == "+=" and node.op in (">", ">=", "!=", "<"):',
        "+= is taken to enable a < requirement"),
    "graph_data_edges_untyped": (
        "core/synthesis/graph.py",
        ' and (pcol.type in ("id", "ref") and wcol.type in ("id", "ref"))',
        "",
        "data edges without the id/ref type check"),
    # these two were caught before the tests issue; kept so they stay caught
    "env_reset_by_task_id": (
        "core/data/taskmodel.py",
        'key = self._state_key = (id(self.initial), f"{self.id}:{digest}")',
        'key = self._state_key = (id(self.initial), f"{self.id}")',
        "reset keyed by task id instead of state key"),
    "tasks_guessable_kept": (
        "core/tasks/generator.py",
        "raise Drop(\"nothing to check but values that could be guessed\")",
        "pass",
        "tasks whose only check is a guessable value are kept"),
}

IGNORE = shutil.ignore_patterns(".venv", ".git", "mutants", "scaleenv-workspace", "__pycache__", "*.pyc",
                                ".hypothesis", ".ruff_cache")


def plant(name: str, dest: Path) -> None:
    path, old, new, _ = MUTANTS[name]
    f = dest / path
    text = f.read_text()
    if text.count(old) != 1:
        raise SystemExit(f"engine_mutants: error: mutant {name}: the text to change occurs "
                         f"{text.count(old)} times in {path} (the code moved; update the mutant)")
    f.write_text(text.replace(old, new))


def run(name: str, pytest_args: list[str]) -> tuple[bool, float, str]:
    with tempfile.TemporaryDirectory(prefix=f"mutant-{name}-") as tmp:
        dest = Path(tmp) / "repo"
        shutil.copytree(ROOT, dest, ignore=IGNORE)
        plant(name, dest)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *pytest_args],
                              cwd=dest, capture_output=True, text=True)
        tail = [ln for ln in done.stdout.splitlines() if ln.strip()][-1:] or [""]
        return done.returncode != 0, time.perf_counter() - t, tail[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, pytest_args = ap.parse_args(argv[:cut]), argv[cut + 1:]  # after --: arguments for pytest
    if args.list:
        for n, (path, _, _, what) in MUTANTS.items():
            print(f"{n:30} {path:18} {what}")
        return 0
    unknown = [n for n in args.names if n not in MUTANTS]
    if unknown:
        print(f"engine_mutants: error: unknown mutant(s) {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    names = args.names or list(MUTANTS)
    for n in names:  # fail fast if the code moved under a mutant
        path, old, _, _ = MUTANTS[n]
        if (ROOT / path).read_text().count(old) != 1:
            print(f"engine_mutants: error: mutant {n}: its text is not found once in {path}", file=sys.stderr)
            return 2
    survived = []
    for n in names:
        killed, secs, tail = run(n, pytest_args)
        print(f"{'killed  ' if killed else 'SURVIVED'} {n:30} {secs:6.1f} s  {tail}", flush=True)
        if not killed:
            survived.append(n)
    print(json.dumps({"mutants": len(names), "killed": len(names) - len(survived), "survived": survived}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
