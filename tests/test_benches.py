"""Every bench script runs at a tiny size, so a change in the engine cannot quietly break one.

Each runs as a user runs it (a subprocess from the project's root) and must exit 0 with a JSON
object on its last line. Times are printed by the benches, never asserted here."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.evaluation.reward import value_mentioned

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def run_bench(*argv: str, timeout: int = 120) -> tuple[dict, list[str]]:
    p = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert lines, p.stderr[-2000:]
    return json.loads(lines[-1]), lines


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_synth_bench(bike_bp):
    doc, lines = run_bench("bench/synth.py", "--runs", "1", "--domains", "bike_rental")
    assert set(doc) == {"runs", "median_s", "domains", "tools", "tools_passed"}
    assert len(doc["runs"]) == 1 and doc["runs"][0] > 0 and doc["median_s"] == doc["runs"][0]
    assert doc["domains"] == 1
    assert doc["tools"] == doc["tools_passed"] == len(bike_bp.operations)
    assert lines[0].startswith("run 1: ")


def test_mutation_bench():
    doc, lines = run_bench("bench/mutation.py", "--domain", "bike_rental")
    assert set(doc) == {"mutants", "killed"}
    assert doc["mutants"] >= 100
    assert doc["killed"] / doc["mutants"] >= 0.9
    assert lines[0].startswith("bike_rental ")


def test_runtime_bench():
    doc, lines = run_bench("bench/runtime.py", "--json", "--sizes", "100", "--tasks", "5", "--seconds", "0.2",
                           "--envs", "5")
    assert len(lines) == 1  # --json prints only the JSON line
    assert doc["domain"] == "bike_rental"
    [row] = doc["sizes"]
    assert set(row) == {"rows", "tasks", "reset_us_p50", "reset_new_task_us_p50", "step_us_p50", "evaluate_us_p50",
                        "episodes_per_s", "env_mem_kib", "snapshot_kib", "seed_rows_s"}
    assert 50 <= row["rows"] <= 200 and 1 <= row["tasks"] <= 5
    for k in ("reset_us_p50", "reset_new_task_us_p50", "step_us_p50", "evaluate_us_p50", "episodes_per_s",
              "snapshot_kib"):
        assert row[k] > 0, k
    assert isinstance(row["env_mem_kib"], int | float)


KINDS = {"do nothing", "drop a step", "swap an argument", "add a stray write", "tell a wrong value", "wrong claim",
         "wrong record"}
CLAIM_VARIANTS = {"completed: refusal claimed", "completed: goal reported not done", "refused: success claimed",
                  "refused: success claimed beside a refusal", "refused: success claimed in passing"}


def test_soundness_bench():
    doc, lines = run_bench("bench/soundness.py", "--domains", "bike_rental", "-n", "12", "--workers", "1")
    assert {"perturbed", "scored_zero", "domains", "kinds", "wrong_values", "wrong_claims", "reworded",
            "reworded_scored_one"} <= set(doc)
    assert doc["domains"] == 1
    assert doc["perturbed"] >= 30
    assert doc["scored_zero"] == doc["perturbed"]
    assert set(doc["kinds"]) == KINDS
    assert all(k["scored_zero"] == k["perturbed"] > 0 for k in doc["kinds"].values())
    assert set(doc["wrong_claims"]) == CLAIM_VARIANTS
    assert all(k["scored_zero"] == k["perturbed"] > 0 for k in doc["wrong_claims"].values())
    assert sum(k["perturbed"] for k in doc["wrong_claims"].values()) == doc["kinds"]["wrong claim"]["perturbed"]
    assert doc["reworded_scored_one"] == doc["reworded"] > 0  # truthful rewordings still score 1
    assert doc["synonym_claims"]["tried"] > 0  # a known limit, measured apart and not asserted
    # string values are told wrong too, not only numbers and booleans
    assert doc["wrong_values"].get("string (same column)", 0) > 0
    assert lines[0].startswith("bike_rental ")


def test_soundness_bench_refuses_an_unknown_domain():
    p = subprocess.run([sys.executable, "bench/soundness.py", "--domains", "nope"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 2
    assert "no sample domain nope" in p.stderr.splitlines()[-1]


@pytest.fixture(scope="module")
def bike_tasks(bike_domain):
    from core.tasks.generator import TaskGenerator

    tasks, _ = TaskGenerator(bike_domain, seed=0).generate(10)
    return tasks


def test_a_wrong_value_never_states_the_right_one(bike_domain, bike_tasks):
    """The bug this bench had: `not-RNT-0061` still states RNT-0061, so every string case was skipped."""
    sound = load("soundness")
    rng = random.Random(0)
    told = Counter()
    for task in bike_tasks:
        wrong: Counter = Counter()
        variants = sound.perturbations(task, bike_tasks, rng, sound.column_values(bike_domain, task), wrong)
        said = [m[-1]["content"] for kind, _, m in variants if kind == "tell a wrong value"]
        required = task.ground_truth.communicate
        assert not any(k.startswith("skipped") for k in wrong), task.id  # each required value is told wrong once
        for rv, text in zip(required, said, strict=True):
            assert not value_mentioned(rv.value, text), (task.id, rv.value, text)
        told.update(sound.kind_of(rv.value) for rv in required)
    assert told["string"] > 0 and told["number"] > 0  # the tasks do ask for both


def test_a_wrong_string_comes_from_the_same_column(bike_domain, bike_tasks):
    from core.evaluation.reward import RequiredValue

    sound = load("soundness")
    task = bike_tasks[0]
    values = sound.column_values(bike_domain, task)
    rng = random.Random(1)
    rider_ids = {r["rider_id"] for r in bike_domain.rows["riders"]}
    right = sorted(rider_ids)[0]
    bad, source = sound.wrong_value(RequiredValue(value=right, label="riders.rider_id"), values, rng)
    assert source == "same column" and bad in rider_ids and bad != right
    bad, source = sound.wrong_value(RequiredValue(value=right, label="no_such.column"), values, rng)
    assert source == "changed" and not value_mentioned(right, str(bad))
    bad, _ = sound.wrong_value(RequiredValue(value=12.5, label="no_such.column"), values, rng)
    assert not value_mentioned(12.5, str(bad))
    assert sound.wrong_value(RequiredValue(value=True, label="x.y"), values, rng) == (False, "negated")


def test_engine_mutants_list_matches_what_it_plants():
    p = subprocess.run([sys.executable, "bench/engine_mutants.py", "--list"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    mutants = load("engine_mutants").MUTANTS
    listed = [ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()]
    assert listed == list(mutants) and listed


def test_every_engine_mutant_still_finds_its_text_once():
    """The bench plants each bug by replacing a text that must occur once; a moved text would make it
    refuse to run (it checks before running). Caught here instead, without running the suite 16 times."""
    mutants = load("engine_mutants").MUTANTS
    stale = {name: (path, (ROOT / path).read_text().count(old)) for name, (path, old, _new, _what) in mutants.items()
             if (ROOT / path).read_text().count(old) != 1}
    assert stale == {}


def test_a_wrong_claim_keeps_the_oracle_values_and_misreports_the_outcome(bike_domain, bike_tasks):
    sound = load("soundness")
    from core.runtime.env import DomainRuntime
    from core.tasks.generator import oracle_messages

    intents = {n: t.spec.intent for n, t in DomainRuntime(bike_domain).tools.items()}
    refused = [t for t in bike_tasks if t.is_refusal]
    assert refused and len(refused) < len(bike_tasks)
    for task in bike_tasks:
        claims = sound.wrong_claims(task, intents)
        variants = {v for v, _ in claims}
        assert variants == ({v for v in CLAIM_VARIANTS if v.startswith("refused")} if task.is_refusal
                            else {v for v in CLAIM_VARIANTS if v.startswith("completed")}), task.id
        body = oracle_messages(task)[-1]["content"].split(". ", 1)[1]
        for _, text in claims:
            assert body in text, (task.id, text)
            assert text.startswith("I could not") != task.is_refusal, (task.id, text)


def test_a_wrong_record_runs_a_goal_on_the_closest_planted_look_alike(bike_domain, bike_tasks):
    sound = load("soundness")
    tables = bike_domain.domain.tables
    seen = 0
    for task in bike_tasks:
        original = [s.args for s in task.chain]
        for calls in sound.wrong_records(task, bike_domain, random.Random(0)):
            changed = [(i, p) for i, c in enumerate(calls) for p, v in c["arguments"].items() if v != original[i][p]]
            assert len(changed) == 1, changed  # one argument of one goal
            [(i, p)] = changed
            assert task.chain[i].role == "goal" and calls[i]["name"] == task.chain[i].tool
            right, other = original[i][p], calls[i]["arguments"][p]
            [t] = [t for t in tables if any(r[t.primary_key] == right for r in
                                            task.initial.upsert.get(t.name, []) + bike_domain.rows.get(t.name, []))]
            pk = t.primary_key
            planted = [r for r in task.initial.upsert.get(t.name, []) if r[pk] != right]
            if not planted:
                continue
            seen += 1
            target = next(r for r in task.initial.upsert.get(t.name, []) + bike_domain.rows[t.name] if r[pk] == right)
            alike = {r[pk]: sum(r[c] == x for c, x in target.items() if c != pk) for r in planted}
            assert alike[other] == max(alike.values()), (task.id, p, other, alike)  # the closest look-alike
    assert seen > 0
