"""The examples in README.md and docs/tasks.md, pinned against what the CLI really gives.

The examples are read from the documents themselves and recomputed in subprocesses with a
PYTHONHASHSEED other than the test process's, so they hold whatever the hash seed: README's
session (`synth`, `tasks generate -n 20`, `domains`, `export`, `eval`) on bike_rental at seed 0,
the task `bike_rental-0-00014` of docs/tasks.md, its identification and refusal examples, and
the "Python API for trainers" snippet, run as written against the CLI's workspace.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TASKS_MD = (ROOT / "docs" / "tasks.md").read_text()
HASH_SEED = "123"


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED}
    env.pop("SCALEENV_WORKSPACE", None)
    done = subprocess.run(list(argv), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def cli(*args: str) -> str:
    return run(sys.executable, "-m", "scaleenv_tui.cli", *args).stdout


def fenced(text: str, lang: str) -> list[tuple[str, str]]:
    """(the heading above it, the body) of every ```lang block."""
    out, heading, block, body = [], "", None, []
    for line in text.splitlines():
        if block is None and line.startswith("```"):
            block, body = line[3:].strip(), []
        elif block is not None and line.startswith("```"):
            if block == lang:
                out.append((heading, "\n".join(body) + "\n"))
            block = None
        elif block is not None:
            body.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return out


def example(text: str, heading: str, lang: str = "json") -> str:
    (body,) = [b for h, b in fenced(text, lang) if h.startswith(heading)]
    return body


def without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict[str, Any]:
    """README's "A session", in a fresh workspace, each command a process with PYTHONHASHSEED=123."""
    w = tmp_path_factory.mktemp("docs") / "ws"
    out = w / "bike_rental.jsonl"
    got: dict[str, Any] = {"ws": w, "out": out}
    got["synth"] = json.loads(cli("synth", "sample_domains/bike_rental.yaml", "--workspace", str(w), "--json"))
    got["generate"] = json.loads(cli("tasks", "generate", "bike_rental", "-n", "20", "--workspace", str(w), "--json"))
    got["domains"] = json.loads(cli("domains", "--workspace", str(w), "--json"))
    got["export"] = json.loads(cli("tasks", "export", "bike_rental", "--out", str(out), "--workspace", str(w),
                                   "--json"))
    got["tasks"] = {t["id"]: t for t in map(json.loads, out.read_text().splitlines())}
    got["order"] = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    for agent in ("oracle", "random", "guesser"):
        got[agent] = json.loads(cli("eval", "bike_rental", "--agent", agent, "--workspace", str(w), "--json"))
    return got


# ---------------------------------------------------------------------- README: the CLI's --json examples


def test_synth_json_is_the_readme_example(session):
    (doc,) = json.loads(example(README, "`scaleenv synth`"))["domains"]
    (got,) = session["synth"]["domains"]
    assert without(got, "seconds") == without(doc, "seconds")
    assert (got["tests"], got["edges"], got["density"], got["tools"], got["tables"], got["rows"]) == \
        (324, 615, 0.415, 39, 7, 252)
    assert set(session["synth"]) == {"domains", "seconds", "workspace"}


def test_domains_json_is_the_readme_example(session):
    doc = json.loads(example(README, "`scaleenv domains`"))
    got = session["domains"]
    assert set(got) == set(doc)
    assert [without(d, "seconds") for d in got["domains"]] == [without(d, "seconds") for d in doc["domains"]]
    assert got["workspace"] == f"sqlite:///{session['ws'] / 'workspace.db'}"


def test_tasks_generate_json_is_the_readme_example(session):
    doc = json.loads(example(README, "`scaleenv tasks generate`"))
    got = session["generate"]
    assert set(got) == set(doc)
    assert [without(d, "seconds") for d in got["domains"]] == [without(d, "seconds") for d in doc["domains"]]


def test_tasks_export_json_is_the_readme_example(session):
    m = re.search(r"`--json` prints `(\{\"domain\".*?\})`", README)
    doc = json.loads(m.group(1))
    assert without(session["export"], "out") == without(doc, "out")
    assert session["export"]["out"] == str(session["out"])
    assert len(session["tasks"]) == doc["tasks"] == 20


def test_eval_json_is_the_readme_example_and_the_floors_hold(session):
    doc = json.loads(example(README, "`scaleenv eval`"))
    assert without(session["oracle"], "seconds") == without(doc, "seconds")
    for floor in ("random", "guesser"):
        assert (session[floor]["agent"], session[floor]["tasks"], session[floor]["passed"]) == (floor, 20, 0)


def test_the_sample_domain_table_names_every_blueprint_with_its_title():
    rows = dict(re.findall(r"^\| `(\w+\.yaml)` \| (.+?) \|$", README, re.M))
    files = sorted(p.name for p in (ROOT / "sample_domains").glob("*.yaml"))
    assert sorted(rows) == files and len(files) == 16
    for f in files:
        assert yaml.safe_load((ROOT / "sample_domains" / f).read_text())["title"] == rows[f], f


# ---------------------------------------------------------------------- docs/tasks.md: the task examples


def test_the_example_task_is_bike_rental_0_00016_as_printed(session):
    doc = json.loads(example(TASKS_MD, "An example"))
    got = session["tasks"][doc["id"]]
    assert doc["id"] == "bike_rental-0-00016"
    # the one abridgement: the inserted payments row of `diff` repeats `expected` and is cut to "…"
    (cut,) = doc["ground_truth"]["diff"]["payments"]["inserted"]
    assert cut == {"payment_id": "PAY-0051", "…": "…"}
    assert got["ground_truth"]["diff"]["payments"]["inserted"] == got["ground_truth"]["expected"]["inserted"]["payments"]
    doc["ground_truth"]["diff"]["payments"]["inserted"] = got["ground_truth"]["expected"]["inserted"]["payments"]
    assert got == doc


def test_the_example_task_scores_only_on_the_right_pass(session):
    """docs/tasks.md: "Refunding PSS-0027 ... or the month pass gives 0"; the right pass gives 1."""
    assert "Refunding `PSS-0027`, the other Kimberly's account or the month pass gives 0" in TASKS_MD
    script = """
import json, sys
from core.runtime.env import DomainRuntime, Environment
from core.data.store import Workspace
from core.tasks.generator import oracle_messages
ws = Workspace(sys.argv[1])
task = next(t for t in ws.load_tasks("bike_rental") if t.id == "bike_rental-0-00016")
env = Environment(DomainRuntime(ws.load_domain("bike_rental")))
out = {}
for pass_id in ("PSS-0004", "PSS-0027", "PSS-0026"):
    env.reset(task)
    for s in task.chain:
        env.step({"name": s.tool, "arguments": {**s.args, "pass_id": pass_id} if s.tool == "refund_pass" else s.args})
    out[pass_id] = env.evaluate(oracle_messages(task)).reward
print(json.dumps(out))
"""
    got = json.loads(run(sys.executable, "-c", script, str(session["ws"])).stdout)
    assert got == {"PSS-0004": 1.0, "PSS-0027": 0.0, "PSS-0026": 0.0}


def test_the_identification_examples_come_from_this_run(session):
    section = TASKS_MD[TASKS_MD.index("### `identifications`"):TASKS_MD.index("## What the agent sees")]
    phrases = re.findall(r'"((?:the|my) [^"]+)"', section)
    idents = [json.loads(" ".join(s.split())) for s in re.findall(r"`(\{\"table\".*?\})`", section, re.S)]
    assert phrases == ["the bike with serial BK48954-RA", "my day pass"]
    assert idents == [{"table": "bikes", "filters": {"serial": "BK48954-RA"}, "target": "BK-0008"},
                      {"table": "passes", "filters": {"rider_id": "RDR-0004", "kind": "day"}, "target": "PSS-0004"}]
    found = {}
    for phrase, ident in zip(phrases, idents, strict=True):
        found[phrase] = [tid for tid, t in session["tasks"].items()
                         if ident in t["identifications"] and phrase in t["scenario"]["instruction"]]
    assert found == {"the bike with serial BK48954-RA": ["bike_rental-0-00015"],
                     "my day pass": ["bike_rental-0-00016"]}


def test_the_refusal_example_is_bike_rental_0_00014(session):
    text = " ".join(TASKS_MD.split())
    said = re.search(r"Paul says: \"(.*?)\" The chain", text, re.S).group(1)
    t = session["tasks"]["bike_rental-0-00014"]
    assert t["scenario"]["instruction"] == said
    # a refusal reads like any other request: nothing in it says it may fail
    assert "not possible" not in said and "blocking" not in said
    assert [(s["tool"], s["role"], s["expect"]) for s in t["chain"]] == [
        ("find_rider_by_email", "lookup", "ok"), ("list_passes_by_rider", "lookup", "ok"),
        ("refund_pass", "goal", "precondition")]
    assert t["ground_truth"]["outcome"] == "refused"
    assert t["expansion"] == ["refusal", "distractors"]
    assert t["ground_truth"]["expected"] == {"inserted": {}, "updated": {}, "deleted": {}}
    assert [(v["value"], v["label"], v["why"]) for v in t["ground_truth"]["communicate"]] == [
        ("2026-02-14", "passes.valid_until", "what blocks the request")]
    assert "the pass ran out on 2026-02-14" in text


# ---------------------------------------------------------------------- README: the Python API for trainers


def test_the_python_api_snippet_runs_as_written(session):
    blocks = [b for h, b in fenced(README, "python") if h == "Python API for trainers"]
    assert len(blocks) == 2 and 'Workspace("/tmp/ws")' in blocks[0]
    code = "\n".join(blocks).replace('"/tmp/ws"', repr(str(session["ws"])))
    lines = run(sys.executable, "-c", code).stdout.splitlines()
    tasks = [session["tasks"][i] for i in session["order"]]
    first = next(t for t in tasks if t["ground_truth"]["outcome"] == "completed")
    assert len(lines) == 6, lines
    assert lines[0] == f"39 tools; {first['scenario']['instruction']}"
    assert lines[1] == "1.0 []"
    assert json.loads(json.dumps(ast.literal_eval(lines[2]))) == first["ground_truth"]["diff"] != {}
    assert lines[3] == "0.0"
    assert lines[4] == str([t["chain"][0]["expect"] == "ok" for t in tasks[:4]])
    assert lines[5] == "1.0"
