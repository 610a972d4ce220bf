"""The CLI's promises (README, "The CLI"): exit codes, one-line `scaleenv: error:` messages, what is
kept when a domain fails, and atomic exports.

Exit status: 0 on success; 1 when a blueprint could not be read or a domain failed (the others are
still stored); 2 for a usage error (no blueprint named, an unknown domain, an unavailable backend,
an option out of range, a workspace that does not exist or cannot be opened or is damaged, nothing
to evaluate, a directory as --out)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import core.data.store as store
from core.data.store import Workspace
from core.data.taskmodel import Task
from scaleenv_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
BIKE = ROOT / "sample_domains" / "bike_rental.yaml"
VENV_BIN = Path(sys.executable).parent
PREFIX = "scaleenv: error: "


@pytest.fixture(autouse=True)
def _no_workspace_from_the_environment(monkeypatch):
    monkeypatch.delenv("SCALEENV_WORKSPACE", raising=False)
    monkeypatch.delenv("SCALEENV_DEBUG", raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`scaleenv ARGV...` in-process: (exit status, stdout, stderr). argparse's own errors exit too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_error(err: str) -> str:
    """stderr is exactly one `scaleenv: error:` line, and no traceback; returns its message."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX), err
    return lines[0][len(PREFIX):]


@pytest.fixture(scope="module")
def bike_tasks(bike_domain):
    from core.tasks.generator import TaskGenerator

    tasks, _ = TaskGenerator(bike_domain, seed=0).generate(5)
    assert len(tasks) == 5, "test setup"
    return tasks


@pytest.fixture
def ws(tmp_path, bike_domain, bike_tasks) -> Path:
    """A workspace directory holding bike_rental and 5 of its tasks."""
    where = tmp_path / "ws"
    w = Workspace(where)
    w.save_domain(bike_domain)
    w.replace_tasks("bike_rental", bike_tasks)
    return where


def _db(where: Path) -> Workspace:
    return Workspace(where, create=False)


def _damage(where: Path, table: sa.Table, column: str, position: int | None = None) -> None:
    w = _db(where)
    q = sa.update(table).values({column: "{damaged"})
    if position is not None:
        q = q.where(table.c.position == position)
    with w.engine.begin() as c:
        c.execute(q)


# ---------------------------------------------------------------------- exit 2: usage errors


def _usage_cases(ws: Path, tmp: Path) -> list[tuple[list[str], list[str]]]:
    """(argv, fragments the one error line must contain)."""
    return [
        (["synth", "--workspace", tmp / "new"], ["name blueprint files, or --all"]),
        (["synth", BIKE, "--backend", "gpt-4o", "--workspace", tmp / "new"], ["unknown backend 'gpt-4o'"]),
        (["synth", BIKE, "--backend", "openai/gpt-4o-mini", "--workspace", tmp / "new"],
         ["backend 'openai/gpt-4o-mini'", "not available", "--backend procedural"]),
        (["synth", BIKE, "--scale", "0", "--workspace", tmp / "new"], ["--scale", "above 0", "got 0"]),
        (["synth", BIKE, "--scale", "1001", "--workspace", tmp / "new"], ["--scale", "at most 1000", "got 1001"]),
        (["synth", BIKE, "--scale", "-2", "--workspace", tmp / "new"], ["--scale", "got -2"]),
        (["synth", BIKE, "--workers", "0", "--workspace", tmp / "new"], ["--workers must be at least 1"]),
        (["synth", BIKE, BIKE, "--workspace", tmp / "dup"], [str(BIKE), "domain 'bike_rental' is defined twice"]),
        (["tasks", "generate", "nope", "--workspace", ws], ["no domain 'nope'", str(ws), "(domains: bike_rental)"]),
        (["tasks", "generate", "bike_rental", "nope", "--workspace", ws], ["no domain 'nope'"]),
        (["tasks", "generate", "-n", "0", "--workspace", ws], ["-n", "at least 1"]),
        (["tasks", "generate", "--max-chain", "0", "--workspace", ws], ["--max-chain", "at least 1"]),
        (["tasks", "export", "nope", "--out", tmp / "x.jsonl", "--workspace", ws],
         ["no domain 'nope'", str(ws), "(domains: bike_rental)"]),
        (["tasks", "export", "bike_rental", "--out", tmp, "--workspace", ws],
         [f"--out {tmp} is a directory", f"name a file, e.g. {tmp / 'bike_rental.jsonl'}"]),
        (["eval", "nope", "--workspace", ws], ["no domain 'nope'", str(ws)]),
        (["eval", "nope", "--agent", "random", "--workspace", ws, "--json"], ["no domain 'nope'"]),
    ]


def test_usage_errors_exit_2_with_one_line_naming_the_problem(ws, tmp_path, capsys):
    for argv, fragments in _usage_cases(ws, tmp_path):
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        msg = one_error(err)
        assert all(f in msg for f in fragments), (argv, msg)
        assert out == "", argv  # errors never go to stdout, not even with --json
    assert not (tmp_path / "new").exists()  # refused before anything was created
    assert not (tmp_path / "x.jsonl").exists()
    assert [t.id for t in _db(ws).load_tasks("bike_rental")]  # nothing was touched


def test_a_usage_error_writes_nothing(ws, tmp_path, capsys, bike_tasks):
    before = [t.model_dump_json() for t in _db(ws).load_tasks("bike_rental")]
    assert run(capsys, "tasks", "generate", "-n", "0", "--workspace", ws)[0] == 2
    assert [t.model_dump_json() for t in _db(ws).load_tasks("bike_rental")] == before


ARGPARSE_ERRORS = [
    ["eval", "--agent", "smart"],
    ["synth", "--all", "--scale", "abc"],
    ["tasks", "export", "bike_rental"],  # --out is required
    ["tasks", "export", "bike_rental", "--out", "x.jsonl", "--status", "done"],
    ["tasks"],
    ["frobnicate"],
]


@pytest.mark.parametrize("argv", ARGPARSE_ERRORS, ids=[" ".join(a) for a in ARGPARSE_ERRORS])
def test_errors_found_by_the_argument_parser_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == "" and "Traceback" not in err and err.strip()


@pytest.mark.parametrize("argv", ARGPARSE_ERRORS[:2], ids=[" ".join(a) for a in ARGPARSE_ERRORS[:2]])
def test_errors_found_by_the_argument_parser_are_one_scaleenv_error_line(capsys, argv):
    one_error(run(capsys, *argv)[2])


# ---------------------------------------------------------------------- exit 2: the workspace


READERS = [["domains"], ["tasks", "generate", "--all"], ["tasks", "export", "bike_rental", "--out", "{tmp}/x.jsonl"],
           ["eval", "--agent", "oracle"]]
READER_IDS = ["domains", "generate", "export", "eval"]


@pytest.mark.parametrize("argv", READERS, ids=READER_IDS)
@pytest.mark.parametrize("where", ["typo", "typo.db", "sqlite:///{tmp}/typo.sqlite"], ids=["dir", "db file", "url"])
def test_a_workspace_that_does_not_exist_is_exit_2_and_is_not_created(tmp_path, capsys, argv, where):
    where = where.format(tmp=tmp_path)
    location = where if "://" in where else str(tmp_path / where)
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv], "--workspace", location)
    assert code == 2
    msg = one_error(err)
    assert msg.startswith("no workspace at ") and location in msg
    assert out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["synth", str(BIKE)], *READERS], ids=["synth", *READER_IDS])
def test_a_workspace_url_that_cannot_be_opened_is_exit_2(tmp_path, capsys, argv):
    code, _, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv], "--workspace", "nosuchdialect://x/y")
    assert code == 2
    assert one_error(err).startswith("cannot open workspace 'nosuchdialect://x/y': ")


def test_a_file_that_is_not_a_database_is_exit_2(tmp_path, capsys):
    bogus = tmp_path / "notes.db"
    bogus.write_text("my shopping list\n")
    for argv in (["domains"], ["eval"], ["synth", str(BIKE)]):
        code, _, err = run(capsys, *argv, "--workspace", bogus)
        assert code == 2
        assert err.startswith(f"{PREFIX}cannot open workspace 'sqlite:///{bogus}'") and "file is not a database" in err
        assert "Traceback" not in err
    assert bogus.read_text() == "my shopping list\n"


def test_a_file_that_is_not_a_database_gets_one_error_line(tmp_path, capsys):
    bogus = tmp_path / "notes.db"
    bogus.write_text("my shopping list\n")
    one_error(run(capsys, "domains", "--workspace", bogus)[2])


DAMAGE = [
    ("summary", store.domains_t, "stats_json", None, [["domains"]], "a domain summary in {url} is damaged"),
    ("schema", store.domains_t, "schema_json", None, [["tasks", "generate", "--all"], ["eval"]],
     "domain 'bike_rental' in {url} is damaged and cannot be read"),
    ("tool", store.tools_t, "spec_json", 3, [["tasks", "generate", "bike_rental"], ["eval", "bike_rental"]],
     "domain 'bike_rental' in {url} is damaged and cannot be read"),
    ("seed row", store.rows_t, "data_json", 3, [["tasks", "generate", "--all"]],
     "domain 'bike_rental' in {url} is damaged and cannot be read"),
    ("task", store.tasks_t, "task_json", 2, [["tasks", "export", "bike_rental", "--out", "{tmp}/x.jsonl"], ["eval"]],
     "the tasks of 'bike_rental' in {url} are damaged and cannot be read"),
]


@pytest.mark.parametrize("case", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_workspace_is_exit_2_naming_the_record(ws, tmp_path, capsys, case):
    _, table, column, position, argvs, what = case
    _damage(ws, table, column, position)
    url = _db(ws).url
    for argv in argvs:
        code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv], "--workspace", ws)
        assert code == 2, argv
        assert one_error(err).startswith(what.format(url=url)), argv
        assert out == ""
    assert not (tmp_path / "x.jsonl").exists()


def test_eval_with_nothing_to_evaluate_is_exit_2(tmp_path, capsys, bike_domain):
    Workspace(tmp_path).save_domain(bike_domain)  # a domain, no tasks
    code, out, err = run(capsys, "eval", "--workspace", tmp_path, "--json")
    assert code == 2 and out == ""
    assert one_error(err) == "no tasks to evaluate; run: scaleenv tasks generate --all"


def test_generate_in_an_empty_workspace_is_exit_2(tmp_path, capsys):
    Workspace(tmp_path)
    code, _, err = run(capsys, "tasks", "generate", "--workspace", tmp_path)
    assert code == 2
    assert one_error(err) == f"no domains in {_db(tmp_path).url}; run: scaleenv synth --all"


def test_the_installed_command_exits_2_for_a_missing_workspace(tmp_path):
    exe = VENV_BIN / "scaleenv"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "scaleenv_tui.cli"]
    p = subprocess.run([*cmd, "eval", "--workspace", str(tmp_path / "typo"), "--json"], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2
    assert p.stdout == ""
    assert one_error(p.stderr).startswith(f"no workspace at {tmp_path / 'typo'}")


# ---------------------------------------------------------------------- exit 1: blueprints and failed domains


def test_an_unreadable_blueprint_is_exit_1_and_the_others_are_stored(tmp_path, capsys):
    code, out, err = run(capsys, "synth", tmp_path / "nope.yaml", BIKE, "--workspace", tmp_path / "ws", "--json")
    assert code == 1
    assert one_error(err).startswith(f"{tmp_path / 'nope.yaml'}: cannot read file")
    assert [d["name"] for d in json.loads(out)["domains"]] == ["bike_rental"]
    assert _db(tmp_path / "ws").domain_names() == ["bike_rental"]


def _fail_synthesis_of(monkeypatch, name: str) -> None:
    """The worker synthesizing ``name`` raises (workers are forked, so they inherit the patch)."""
    import core.synthesis.synth

    real = core.synthesis.synth.synthesize

    def synthesize(bp, *a, **kw):
        if bp.name == name:
            raise RuntimeError("the disk is on fire\nsecond line of the story")
        return real(bp, *a, **kw)

    monkeypatch.setattr(core.synthesis.synth, "synthesize", synthesize)


@pytest.fixture
def two_blueprints(tmp_path) -> Path:
    """bikes_two: bike_rental under another name."""
    other = tmp_path / "bikes_two.yaml"
    text = BIKE.read_text()
    assert text.count("domain: bike_rental") == 1, "test setup"
    other.write_text(text.replace("domain: bike_rental", "domain: bikes_two"))
    return other


def test_a_failed_domain_is_exit_1_and_keeps_its_stored_version_while_the_others_are_stored(
        ws, capsys, monkeypatch, bike_domain, bike_tasks, two_blueprints):
    before = _db(ws).load_domain("bike_rental").model_dump()
    _fail_synthesis_of(monkeypatch, "bike_rental")
    code, out, err = run(capsys, "synth", BIKE, two_blueprints, "--workspace", ws, "--json")
    assert code == 1
    assert one_error(err) == f"{BIKE}: synthesis failed: RuntimeError: the disk is on fire"
    assert [d["name"] for d in json.loads(out)["domains"]] == ["bikes_two"]
    w = _db(ws)
    assert w.domain_names() == ["bike_rental", "bikes_two"]
    # nothing of the failed domain was written: the earlier bike_rental and its tasks are still there
    assert w.load_domain("bike_rental").model_dump() == before
    assert [t.id for t in w.load_tasks("bike_rental")] == [t.id for t in bike_tasks]


def test_scaleenv_debug_shows_the_whole_error_of_a_failed_domain(tmp_path, capsys, monkeypatch):
    _fail_synthesis_of(monkeypatch, "bike_rental")
    monkeypatch.setenv("SCALEENV_DEBUG", "1")
    code, _, err = run(capsys, "synth", BIKE, "--workspace", tmp_path)
    assert code == 1
    assert err.startswith(f"{PREFIX}{BIKE}: synthesis failed: RuntimeError: the disk is on fire\nsecond line")
    assert "Traceback" in err and "synthesize" in err


def test_a_failed_task_generation_is_exit_1_and_keeps_that_domains_tasks(ws, capsys, monkeypatch, bike_domain,
                                                                        bike_tasks):
    import core.tasks.generator

    other = bike_domain.model_copy(update={"domain": bike_domain.domain.model_copy(update={"name": "bikes_two"})})
    _db(ws).save_domain(other)
    real = core.tasks.generator.TaskGenerator.generate

    def generate(self, n, *a, **kw):
        if self.schema.name == "bike_rental":
            raise RuntimeError("out of ideas")
        return real(self, n, *a, **kw)

    monkeypatch.setattr(core.tasks.generator.TaskGenerator, "generate", generate)
    code, out, err = run(capsys, "tasks", "generate", "-n", "3", "--workspace", ws, "--json")  # no name: all
    assert code == 1
    assert one_error(err) == ("bike_rental: task generation failed: RuntimeError: out of ideas "
                              "(set SCALEENV_DEBUG=1 for the traceback)")
    [done] = json.loads(out)["domains"]
    assert done["name"] == "bikes_two" and done["verified"] == 3
    w = _db(ws)
    assert [t.id for t in w.load_tasks("bike_rental")] == [t.id for t in bike_tasks]
    assert [t.id.startswith("bikes_two-0-") for t in w.load_tasks("bikes_two")] == [True] * 3


# ---------------------------------------------------------------------- success: exit 0


def test_generate_then_eval_with_each_agent(ws, capsys):
    code, out, err = run(capsys, "tasks", "generate", "bike_rental", "-n", "4", "--seed", "3", "--workspace", ws,
                         "--json")
    assert code == 0, err
    assert out.count("\n") == 1
    [d] = json.loads(out)["domains"]
    assert d["verified"] == 4 and d["attempted"] == d["verified"] + d["dropped"]
    ids = [t.id for t in _db(ws).load_tasks("bike_rental")]  # the 5 earlier tasks were replaced
    assert len(set(ids)) == 4 and all(re.fullmatch(r"bike_rental-3-\d{5}", i) for i in ids), ids
    rates = {}
    for agent in ("oracle", "random", "guesser"):
        code, out, err = run(capsys, "eval", "--agent", agent, "--workspace", ws, "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["agent"] == agent and doc["tasks"] == 4
        rates[agent] = doc["pass_rate"]
    assert rates == {"oracle": 1.0, "random": 0.0, "guesser": 0.0}


def test_eval_leaves_out_a_tool_the_sandbox_refuses_and_names_it(ws, capsys):
    with _db(ws).engine.begin() as c:
        c.execute(sa.update(store.tools_t).where(store.tools_t.c.name == "start_rental").values(source="import os"))
    code, out, err = run(capsys, "eval", "--workspace", ws, "--json")
    assert code == 0
    [line] = err.splitlines()
    assert line.startswith("scaleenv: warning: bike_rental.start_rental: left out, the sandbox refuses its stored code")
    assert json.loads(out)["tasks"] == 5


# ---------------------------------------------------------------------- tasks export


def test_export_writes_one_task_per_line(ws, tmp_path, capsys, bike_tasks):
    out_file = tmp_path / "sub" / "bike.jsonl"
    code, out, err = run(capsys, "tasks", "export", "bike_rental", "--out", out_file, "--workspace", ws)
    assert code == 0, err
    assert out == f"wrote 5 tasks to {out_file}\n"
    lines = out_file.read_text().splitlines()
    assert [Task.model_validate_json(ln).model_dump() for ln in lines] == [t.model_dump() for t in bike_tasks]
    code, out, _ = run(capsys, "tasks", "export", "bike_rental", "--out", out_file, "--workspace", ws, "--json")
    assert code == 0
    assert json.loads(out) == {"domain": "bike_rental", "tasks": 5, "out": str(out_file)}


def test_export_status_keeps_only_that_review(ws, tmp_path, capsys, bike_tasks):
    w = _db(ws)
    w.set_review(bike_tasks[1].id, "approved", "fine")
    w.set_review(bike_tasks[3].id, "approved")
    w.set_review(bike_tasks[4].id, "rejected", "vague")
    got = {}
    for status in ("approved", "rejected", "pending"):
        out_file = tmp_path / f"{status}.jsonl"
        assert run(capsys, "tasks", "export", "bike_rental", "--out", out_file, "--status", status,
                   "--workspace", ws)[0] == 0
        got[status] = [(t.id, t.review.status, t.review.note)
                       for t in map(Task.model_validate_json, out_file.read_text().splitlines())]
    assert got == {"approved": [(bike_tasks[1].id, "approved", "fine"), (bike_tasks[3].id, "approved", "")],
                   "rejected": [(bike_tasks[4].id, "rejected", "vague")],
                   "pending": [(bike_tasks[0].id, "pending", ""), (bike_tasks[2].id, "pending", "")]}


def _fail_on_third_task(monkeypatch, exc: BaseException) -> None:
    real = Task.model_dump_json
    calls = []

    def dump(self, *a, **kw):
        calls.append(self.id)
        if len(calls) == 3:
            raise exc
        return real(self, *a, **kw)

    monkeypatch.setattr(Task, "model_dump_json", dump)


def test_an_export_that_fails_midway_keeps_the_old_file_and_leaves_no_temp_file(ws, tmp_path, capsys, monkeypatch):
    out_file = tmp_path / "bike.jsonl"
    out_file.write_text("the previous export\n")
    _fail_on_third_task(monkeypatch, OSError(28, "No space left on device"))
    code, out, err = run(capsys, "tasks", "export", "bike_rental", "--out", out_file, "--workspace", ws)
    assert code == 2
    assert one_error(err) == f"cannot write {out_file}: No space left on device"
    assert out == ""
    assert out_file.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bike.jsonl", "ws"]


def test_an_export_into_a_path_that_cannot_be_written_is_one_error_line(ws, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run(capsys, "tasks", "export", "bike_rental", "--out", blocker / "x.jsonl", "--workspace", ws)
    assert code == 2
    assert one_error(err).startswith(f"cannot write {blocker / 'x.jsonl'}: ")


def test_an_interrupted_export_keeps_the_old_file(ws, tmp_path, capsys, monkeypatch):
    out_file = tmp_path / "bike.jsonl"
    out_file.write_text("the previous export\n")
    _fail_on_third_task(monkeypatch, KeyboardInterrupt())
    code, _, err = run(capsys, "tasks", "export", "bike_rental", "--out", out_file, "--workspace", ws)
    assert code == 130
    assert one_error(err) == "interrupted; nothing half-written was kept"
    assert out_file.read_text() == "the previous export\n"


def test_an_interrupted_export_leaves_no_temp_file(ws, tmp_path, capsys, monkeypatch):
    out_file = tmp_path / "bike.jsonl"
    _fail_on_third_task(monkeypatch, KeyboardInterrupt())
    run(capsys, "tasks", "export", "bike_rental", "--out", out_file, "--workspace", ws)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_version_prints_the_installed_distributions_version(capsys):
    from importlib.metadata import version

    from scaleenv_tui.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"scaleenv {version('scaleenv')}"
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert version("scaleenv") == pyproject["project"]["version"]  # the install is this checkout's
