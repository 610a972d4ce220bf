"""The CLI: `scaleenv synth` and `scaleenv domains`, their JSON, and their error messages."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.data.store import Workspace
from scaleenv_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
BIKE = ROOT / "sample_domains" / "bike_rental.yaml"
VENV_BIN = Path(sys.executable).parent

KEYS = {"name", "tables", "rows", "tools", "tools_passed", "tests", "tests_passed", "edges", "density", "seconds"}


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """`scaleenv synth sample_domains/bike_rental.yaml --workspace DIR --json`, run once, in-process."""
    ws = tmp_path_factory.mktemp("ws")
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.delenv("SCALEENV_WORKSPACE", raising=False)
        code = main(["synth", str(BIKE), "--workspace", str(ws), "--json"])
    return ws, code, out.getvalue(), err.getvalue()


def test_synth_json_is_one_object_with_the_summary(synthesized, bike_bp):
    _, code, out, err = synthesized
    assert code == 0, err
    assert out.count("\n") == 1 and out.endswith("\n")
    doc = json.loads(out)
    assert {"domains", "seconds"} <= set(doc)
    assert isinstance(doc["seconds"], int | float) and doc["seconds"] > 0
    [d] = doc["domains"]
    assert set(d) == KEYS
    assert d["name"] == "bike_rental"
    assert d["tables"] == len(bike_bp.schema.tables)
    assert d["tools"] == d["tools_passed"] == len(bike_bp.operations)
    assert d["tests"] == d["tests_passed"] > 0
    assert d["rows"] > 0 and d["edges"] > 0 and 0 < d["density"] < 1


def test_synth_result_matches_in_process_synthesis(synthesized, bike_domain):
    """The CLI (forked worker, other hash seed) stores exactly what an in-process synthesis gives."""
    from core.data.store import Workspace

    ws, *_ = synthesized
    stored = Workspace(ws).load_domain("bike_rental")
    assert stored.rows == bike_domain.rows
    assert [t.implementation.source for t in stored.tools] == [t.implementation.source for t in bike_domain.tools]
    assert stored.edges == bike_domain.edges
    assert stored.provenance.seed == 0 and stored.provenance.backend == "procedural"


def test_domains_json_lists_what_was_stored(synthesized, capsys):
    ws, _, out, _ = synthesized
    assert main(["domains", "--workspace", str(ws), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    summary = json.loads(out)["domains"][0]
    [d] = listed["domains"]
    counts = {"tasks": 0, "pending": 0, "approved": 0, "rejected": 0}
    assert set(d) == KEYS | set(counts)
    assert d == {**summary, **counts}


def test_domains_honours_the_environment_variable(synthesized, capsys, monkeypatch):
    ws, *_ = synthesized
    monkeypatch.setenv("SCALEENV_WORKSPACE", str(ws))
    assert main(["domains", "--json"]) == 0
    assert [d["name"] for d in json.loads(capsys.readouterr().out)["domains"]] == ["bike_rental"]


def test_domains_of_an_empty_workspace(tmp_path, capsys):
    from core.data.store import Workspace

    Workspace(tmp_path)  # created, nothing synthesized yet
    assert main(["domains", "--workspace", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["domains"] == []


def test_reading_a_workspace_that_does_not_exist_is_an_error_not_a_new_one(tmp_path, capsys):
    missing = tmp_path / "typo"
    for argv in (["domains"], ["eval", "--agent", "oracle"], ["tasks", "generate", "--all"]):
        assert main([*argv, "--workspace", str(missing)]) == 2
        assert capsys.readouterr().err.startswith(f"scaleenv: error: no workspace at {missing} ")
    assert not missing.exists()


BAD = [
    ("unknown column in a requirement",
     "check: riders[rider_id].status == 'active'\n        message: the rider's account is not active\n"
     "      - check: count(rentals",
     "check: riders[rider_id].state == 'active'\n        message: the rider's account is not active\n"
     "      - check: count(rentals",
     "riders[rider_id].state", "operations.start_rental.requires[0]", "has no column 'state'"),
    ("bad effect syntax", "      - update bikes[bike_id] set station_id = station_id",
     "      - move bikes[bike_id] to station_id", "move bikes[bike_id]", "operations.move_bike.effects[0]",
     "an effect starts with insert, update or delete"),
    ("unknown table in a ref", "      rider_id: ref riders\n      bike_id: ref bikes",
     "      rider_id: ref ryders\n      bike_id: ref bikes", "ref ryders", "tables.rentals.columns.rider_id",
     "unknown table 'ryders'"),
]


def _line(text: str, marker: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if marker in ln)


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_synth_of_a_bad_blueprint_says_where(tmp_path, capsys, case):
    _, old, new, marker, where, what = case
    text = BIKE.read_text()
    assert text.count(old) == 1, f"test setup: {old!r} must occur once in bike_rental.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new))
    code = main(["synth", str(bad), "--workspace", str(tmp_path / "ws")])
    cap = capsys.readouterr()
    assert code == 1  # a blueprint that could not be read
    [line] = cap.err.splitlines()  # one line, never a traceback
    assert line.startswith(f"scaleenv: error: {bad}:{_line(bad.read_text(), marker)}: {where}: ")
    assert what in line
    assert "Traceback" not in cap.out


def test_synth_of_a_bad_blueprint_from_the_shell(tmp_path):
    """The installed command: one message on stderr, exit 1, no traceback, nothing stored."""
    text = BIKE.read_text().replace("report: [cost]", "report: [price]")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    exe = VENV_BIN / "scaleenv"
    cmd = [str(exe)] if exe.exists() else [str(VENV_BIN / "python"), "-m", "scaleenv_tui.cli"]
    p = subprocess.run([*cmd, "synth", str(bad), "--workspace", str(tmp_path / "ws"), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert line.startswith(f"scaleenv: error: {bad}:{_line(text, 'report: [price]')}: "
                           "operations.end_rental.report: report names 'price'")
    assert json.loads(p.stdout)["domains"] == []


def test_missing_blueprint_file(tmp_path, capsys):
    code = main(["synth", str(tmp_path / "nope.yaml"), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith(f"scaleenv: error: {tmp_path / 'nope.yaml'}: cannot read file")


def test_synth_without_blueprints_is_a_usage_error(tmp_path, capsys):
    assert main(["synth", "--workspace", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "scaleenv: error: name blueprint files, or --all for the sample domains\n"


UNSYNTHESIZABLE = {
    "reference cycle": "domain: cyc\ntables:\n  a:\n    columns:\n      a_id: id A\n      b_id: ref b\n"
                       "  b:\n    columns:\n      b_id: id B\n      a_id: ref a\n",
    "unknown faker provider": "domain: fk\ntables:\n  a:\n    columns:\n      a_id: id A\n"
                              "      label: string faker:no_such_provider\n",
}


@pytest.mark.parametrize("text", list(UNSYNTHESIZABLE.values()), ids=list(UNSYNTHESIZABLE))
def test_an_unsynthesizable_blueprint_gets_a_message_not_a_traceback(tmp_path, capsys, text):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code = main(["synth", str(bad), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith(f"scaleenv: error: {bad}:")
    assert Workspace(tmp_path / "ws").domain_names() == []
