"""Safe YAML for blueprints: anchors/aliases refused, nesting and size bounded, each a one-line
BlueprintError naming the file and the line, never a traceback, a RecursionError or a hang."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from core.spec.blueprint import MAX_BYTES, MAX_DEPTH, BlueprintError, load_blueprint, parse_blueprint
from scaleenv_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "sample_domains").glob("*.yaml"))
ALIASES = "YAML anchors and aliases are not allowed in a blueprint"


@pytest.fixture(autouse=True)
def _no_hang():
    """pytest-timeout is not installed: a SIGALRM turns a hang (an expanding alias bomb) into a failure."""
    def boom(*_):
        raise TimeoutError("blueprint loading hung")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def billion_laughs() -> str:
    names = "abcdefghi"
    text = "a: &a [x,x,x,x,x,x,x,x,x]\n"
    for prev, cur in zip(names[:-1], names[1:], strict=True):
        text += f"{cur}: &{cur} [{','.join(['*' + prev] * 9)}]\n"
    return text


def refused(text: str, file: str = "bp.yaml") -> BlueprintError:
    with pytest.raises(BlueprintError) as info:
        parse_blueprint(text, file)
    e = info.value
    assert "\n" not in str(e)
    assert str(e).startswith(f"{file}:{e.line}: ") if e.line else str(e).startswith(f"{file}: ")
    return e


def test_billion_laughs_is_refused_at_its_first_anchor():
    text = billion_laughs()
    assert len(text) < 400 and text.count("\n") == 9
    e = refused(text)
    assert e.line == 1
    assert str(e) == f"bp.yaml:1: {ALIASES} (line 1)"


def test_billion_laughs_file_is_refused_by_load_blueprint(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(billion_laughs())
    with pytest.raises(BlueprintError, match=ALIASES) as info:
        load_blueprint(f)
    assert info.value.file == str(f) and info.value.line == 1


def test_a_recursive_alias_is_refused():
    e = refused("domain: x\nx: &a [*a]\n")
    assert e.line == 2 and ALIASES in e.message


@pytest.mark.parametrize("text, line", [
    ("domain: x\ny: *nowhere\n", 2),
    ("base: {rows: 3}\nt:\n  <<: *base\n", 3),
    ("domain: x\nt: !!str &s hello\n", 2),
])
def test_any_anchor_or_alias_is_refused_with_its_line(text, line):
    e = refused(text)
    assert e.line == line and e.message == f"{ALIASES} (line {line})"


@pytest.mark.parametrize("closed", [False, True], ids=["unclosed", "closed"])
def test_5000_nested_flow_lists_are_refused_without_recursion_error(closed):
    text = "domain: x\nx: " + "[" * 5000 + ("]" * 5000 if closed else "") + "\n"
    e = refused(text)
    assert e.line == 2 and f"nested deeper than {MAX_DEPTH} levels" in e.message


def test_deep_nested_mappings_are_refused_at_the_line_that_goes_too_deep():
    text = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n"
    e = refused(text)
    assert e.line == MAX_DEPTH + 1 and "nested deeper" in e.message


def test_nesting_up_to_the_limit_is_still_yaml():
    # 64 levels compose fine (the blueprint is then refused for its content, not its depth)
    e = refused("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    assert "nested" not in e.message


def test_a_deep_default_value_in_a_column_string_is_a_blueprint_error():
    text = ("domain: d\ntables:\n  things:\n    columns:\n      thing_id: id T\n"
            f"      n: \"int 0..3 default={'[' * 5000}\"\noperations: {{}}\n")
    e = refused(text)
    assert e.line == 6 and "default value" in e.message


def test_an_oversized_text_is_refused():
    e = refused("domain: x\ndescription: " + "x" * (MAX_BYTES + 1) + "\n")
    assert "larger than" in e.message


def test_an_oversized_file_is_refused_before_reading(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("domain: x\ndescription: " + "x" * (MAX_BYTES + 1) + "\n")
    with pytest.raises(BlueprintError, match="larger than") as info:
        load_blueprint(f)
    assert str(info.value).startswith(f"{f}: ") and "\n" not in str(info.value)


def test_duplicate_keys_and_yaml_errors_keep_their_lines():
    e = refused("domain: x\ntables: {}\ndomain: y\n")
    assert e.line == 3 and "given twice" in e.message
    e = refused("domain: x\ntables: [a, b: c\n")
    assert e.line is not None and "not valid YAML" in e.message


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_domain_still_loads(path):
    bp = load_blueprint(path)
    assert bp.operations and bp.schema.tables


def test_there_are_16_sample_domains():
    assert len(SAMPLES) == 16


def test_scaleenv_synth_of_a_bomb_prints_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SCALEENV_WORKSPACE", raising=False)
    monkeypatch.delenv("SCALEENV_DEBUG", raising=False)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    try:
        code = main(["synth", str(bomb), "--workspace", str(tmp_path / "ws")])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 1  # a blueprint that fails is status 1 (docs/blueprints.md, Errors)
    assert "Traceback" not in err
    assert err.splitlines() == [f"scaleenv: error: {bomb}:1: {ALIASES} (line 1)"]
