"""The sandbox: hostile tool code is refused, endless loops time out, memory bombs die alone."""

from __future__ import annotations

import os
import re

import pytest

from core.context import ToolContext
from core.db import DomainDB
from core.invoke import ArgValidator, invoke
from core.sandbox import Limits, PolicyViolation, check_source, deadline, load_tool, run_isolated

NO_ARGS = ArgValidator({"type": "object", "properties": {}, "required": [], "additionalProperties": False})


def tool(body: str, header: str = "") -> str:
    """Source of a tool ``t(db, ctx)`` whose body is ``body`` (indented for you)."""
    lines = "\n".join("    " + ln for ln in body.strip("\n").splitlines())
    return f"{header}def t(db, ctx):\n{lines}\n"


HOSTILE = [
    ("import os", tool("return 1", "import os\n"), "import of 'os' is not allowed"),
    ("import subprocess", tool("return 1", "import subprocess\n"), "import of 'subprocess' is not allowed"),
    ("import socket inside", tool("import socket\nreturn socket.socket()"), "import of 'socket' is not allowed"),
    ("from os import system", tool("return 1", "from os import system\n"), "import of 'os' is not allowed"),
    ("import os.path", tool("return 1", "import os.path\n"), "import of 'os.path' is not allowed"),
    ("open", tool("return open('/etc/passwd').read()"), "'open' is not allowed"),
    ("eval", tool("return eval('1')"), "'eval' is not allowed"),
    ("exec", tool("exec('x = 1')"), "'exec' is not allowed"),
    ("compile", tool("return compile('1', 'x', 'eval')"), "'compile' is not allowed"),
    ("globals", tool("return globals()"), "'globals' is not allowed"),
    ("__import__", tool("return __import__('os')"), "'__import__' is not allowed"),
    ("subclasses", tool("return ().__class__.__subclasses__()"), "attribute '__class__' is not allowed"),
    ("mro walk", tool("return ''.__class__.__mro__"), "attribute '__mro__' is not allowed"),
    ("getattr", tool("return getattr(db, 'get')"), "'getattr' is not allowed"),
    ("str.format", tool("return '{0.__class__}'.format(db)"), "attribute 'format' is not allowed"),
    ("str.format_map", tool("return '{d.x}'.format_map({'d': db})"), "attribute 'format_map' is not allowed"),
    ("reaching db._db", tool("return db._db.conn.execute('select 1')"), "attribute '_db' is not allowed"),
    ("frame via generator", tool("g = (x for x in [1])\nreturn g.gi_frame.f_globals"),
     "attribute 'gi_frame' is not allowed"),
    ("underscore name", tool("_x = 1\nreturn _x"), "names starting with an underscore"),
    ("class definition", "class A:\n    pass\n" + tool("return A"), "class definitions are not allowed"),
    ("bare except swallowing the time limit", tool("try:\n    return 1\nexcept:\n    return 2"),
     "bare 'except:' is not allowed"),
    ("catch BaseException", tool("try:\n    return 1\nexcept BaseException:\n    return 2"),
     "catching BaseException is not allowed"),
    ("huge power", tool("return 10 ** 100000000"), "'**' takes a constant right operand"),
    ("global", tool("global x\nx = 1"), "global/nonlocal are not allowed"),
    ("no such function", "def u(db, ctx):\n    return 1\n", "must define a function named 't'"),
]


@pytest.mark.parametrize("src,reason", [(s, r) for _, s, r in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_code_is_refused_with_its_reason(src, reason):
    with pytest.raises(PolicyViolation, match=re.escape(reason)) as ei:
        check_source(src, expect="t")
    assert all(re.match(r"line \d+: ", v) for v in ei.value.violations), ei.value.violations
    with pytest.raises(PolicyViolation, match=re.escape(reason)):
        load_tool(src, "t")


def test_the_violation_names_the_line():
    src = "def t(db, ctx):\n    x = 1\n    return eval('x')\n"
    with pytest.raises(PolicyViolation, match="line 3: 'eval' is not allowed") as ei:
        check_source(src)
    assert ei.value.violations == ["line 3: 'eval' is not allowed in tool code"]


def test_allowed_code_loads_and_runs():
    fn = load_tool(tool("import math\nreturn math.floor(2.5) + len([x for x in range(3)])"), "t")
    assert fn(None, None) == 5


# ---------------------------------------------------------------- escapes through allowed modules

ESCAPES = [
    ("json.codecs.open reads any file", "import json\n", "return json.codecs.open('/etc/hostname').read()"),
    ("statistics.sys reaches os", "import statistics\n", "return statistics.sys.modules['os'].getcwd()"),
]


@pytest.mark.parametrize("header,body", [(h, b) for _, h, b in ESCAPES], ids=[e[0] for e in ESCAPES])
def test_allowed_modules_do_not_lead_to_os_or_files(header, body):
    try:
        fn = load_tool(tool(body, header), "t")
    except PolicyViolation:
        return  # refused up front
    try:
        with deadline(2.0):
            value = fn(None, None)
    except Exception:
        return  # or blocked when it runs
    pytest.fail(f"tool code escaped the sandbox and got {value!r}")


# ---------------------------------------------------------------- time limits


@pytest.fixture(scope="module")
def bike_db(bike_bp):
    from core.seed import RowFactory

    db = DomainDB(bike_bp.schema)
    db.load(RowFactory(bike_bp.schema, 0).seed_rows())
    yield db, ToolContext(bike_bp.schema.clock)
    db.close()


LOOPS = [
    ("while True", "while True:\n    pass"),
    ("nested for over large ranges", "n = 0\nfor i in range(999999):\n    for j in range(999999):\n        n += j\nreturn n"),
    ("comprehension over large ranges", "return len([i for i in range(999999) for j in range(999999)])"),
    ("nested comprehension", "return sum([i * j for i in range(5000) for j in range(5000)])"),
    ("for over a generator that never ends", "def gen():\n    while True:\n        yield 1\nfor i in gen():\n    pass"),
]


@pytest.mark.parametrize("body", [b for _, b in LOOPS], ids=[n for n, _ in LOOPS])
def test_endless_loops_are_stopped_by_the_deadline(bike_db, body):
    db, ctx = bike_db
    before = db.state_hash()
    out = invoke(load_tool(tool(body), "t"), NO_ARGS, db, ctx, {}, seconds=0.2)
    assert not out.ok
    assert out.error["kind"] == "timeout"
    assert "time limit of 0.2 s exceeded" in out.error["message"]
    assert db.state_hash() == before


def test_a_timed_out_tool_leaves_no_writes(bike_db):
    db, ctx = bike_db
    before = db.state_hash()
    src = tool("db.update('riders', 'RDR-0001', {'balance': 0})\n"
               "db.insert('payments', {'rider_id': 'RDR-0001', 'amount': 1, 'kind': 'refund', 'created_at': ctx.now})\n"
               "while True:\n    pass")
    out = invoke(load_tool(src, "t"), NO_ARGS, db, ctx, {}, seconds=0.2)
    assert out.error["kind"] == "timeout"
    assert db.state_hash() == before


def test_catching_exception_does_not_swallow_the_time_limit():
    fn = load_tool(tool("while True:\n    try:\n        pass\n    except Exception:\n        pass"), "t")
    from core.sandbox import SandboxTimeout

    with pytest.raises(SandboxTimeout, match=r"time limit of 0\.2 s exceeded"), deadline(0.2):
        fn(None, None)


@pytest.mark.parametrize("body,header,reason", [
    ("return max(itertools.count())", "import itertools\n", "itertools.count is not available to tool code"),
    ("return sum(itertools.repeat(1))", "import itertools\n", "itertools.repeat is not available to tool code"),
    ("return math.factorial(10 ** 8)", "import math\n", "math.factorial is not available to tool code"),
    ("return re.match('(a+)+$', 'a' * 40 + 'b')", "import re\n", "import of 're' is not allowed"),
    ("return 1 << 10 ** 9", "", "'<<' takes a constant right operand of at most 64"),
])
def test_loops_the_deadline_cannot_reach_are_refused_up_front(body, header, reason):
    """Endless or huge work inside C code (no Python-level loop to tick) never gets to run."""
    with pytest.raises(PolicyViolation, match=re.escape(reason)):
        load_tool(tool(body, header), "t")


# ---------------------------------------------------------------- memory limits (isolated process)


def _string_bomb():
    x = "a" * (4 * 1024**3)
    return len(x)


def _list_bomb():
    x = []
    while True:
        x.append("a" * 100_000)


def _tool_bomb():
    fn = load_tool(tool("x = []\nwhile True:\n    x.append('a' * 100000)"), "t")
    return fn(None, None)


@pytest.mark.parametrize("job", [_string_bomb, _list_bomb, _tool_bomb], ids=["4 GiB string", "growing list",
                                                                             "growing list in tool code"])
def test_memory_bombs_are_stopped_and_the_parent_survives(job):
    res = run_isolated(job, limits=Limits(memory_mb=200, wall_seconds=30))
    assert not res.ok
    assert "memory" in res.error.lower()
    assert "200 MiB" in res.error
    child = run_isolated(os.getpid)  # the machinery still works afterwards, and really forks
    assert child.ok and isinstance(child.value, int) and child.value != os.getpid()
    assert run_isolated(lambda: 6 * 7).value == 42


def test_isolated_job_over_its_wall_clock_is_killed():
    import time

    res = run_isolated(time.sleep, 30, limits=Limits(wall_seconds=1))
    assert not res.ok and "wall-clock limit" in res.error


def test_a_crashing_isolated_job_reports_its_error():
    def boom():
        raise RuntimeError("kaput")

    res = run_isolated(boom)
    assert not res.ok and "RuntimeError: kaput" in res.error


# ---------------------------------------------------------------- the database is the only door


OUTSIDE = [
    ("sqlite internals", "return db.insert('sqlite_master', {'name': 'x'})", "no table 'sqlite_master'"),
    ("the id counters", "return db.update('_counters', 'riders', {'n': 0})", "no table '_counters'"),
    ("a column that is not there", "return db.update('riders', 'RDR-0001', {'is_admin': 1})", "no column 'is_admin'"),
    ("SQL in a filter name", "return db.select('riders', **{'1=1 or name': 'x'})", "no column '1=1 or name'"),
    ("a value that does not fit", "return db.update('riders', 'RDR-0001', {'status': 'god'})", "cannot be 'god'"),
    ("changing a row's id", "return db.update('riders', 'RDR-0001', {'rider_id': 'RDR-9999'})", "cannot change"),
]


@pytest.mark.parametrize("body,message", [(b, m) for _, b, m in OUTSIDE], ids=[o[0] for o in OUTSIDE])
def test_a_tool_cannot_write_outside_its_database(bike_db, body, message):
    db, ctx = bike_db
    before = db.state_hash()
    tables = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master")}
    out = invoke(load_tool(tool(body), "t"), NO_ARGS, db, ctx, {})
    assert not out.ok and out.error["kind"] == "internal"
    assert message in out.error["message"]
    assert db.state_hash() == before
    assert {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master")} == tables


def test_a_tool_cannot_reach_the_filesystem_through_the_database(tmp_path, bike_db):
    db, ctx = bike_db
    target = tmp_path / "evil.db"
    src = tool(f"return db.select('riders', name=\"x'); ATTACH DATABASE '{target}' AS evil; --\")")
    out = invoke(load_tool(src, "t"), NO_ARGS, db, ctx, {})
    assert out.ok and out.result == []  # the value is bound as a parameter, never spliced into SQL
    assert not target.exists()


@pytest.mark.parametrize("src,reason", [
    ("NotFound.kind = 'precondition'\ndef t(db, ctx):\n    return 1\n", "module level assignments"),
    ("def t(db, ctx):\n    NotFound.kind = 'ok'\n    return 1\n", "assigning or deleting attributes"),
    ("import math\ndef t(db, ctx):\n    math.floor = abs\n    return 1\n", "assigning or deleting attributes"),
    ("import itertools\nX = list(itertools.chain(range(9)))\ndef t(db, ctx):\n    return X\n", "literal constant"),
    ("def t(db, ctx):\n    return 1\nt = 5\n", "both a function and a constant"),
    ("len('x')\ndef t(db, ctx):\n    return 1\n", "module level code does not run"),
    ("import range\ndef t(db, ctx):\n    return 1\n", "not allowed"),
])
def test_tool_code_cannot_change_the_engine_or_run_at_load(src, reason):
    from core.context import NotFound as NF

    with pytest.raises(PolicyViolation, match=reason):
        load_tool(src, "t")
    assert NF.kind == "not_found"


def test_a_range_too_large_is_refused_when_it_runs(bike_db):
    db, ctx = bike_db
    out = invoke(load_tool(tool("return len(range(5_000_000))"), "t"), NO_ARGS, db, ctx, {}, seconds=1.0)
    assert out.error["kind"] == "internal" and "1,000,000" in out.error["message"]


@pytest.mark.parametrize("src,reason", [
    ("def t(db, ctx, x=[i for i in range(10) for j in range(10)]):\n    return 1\n", "default arguments"),
    ("w = 1\n@(lambda f: w)\ndef t(db, ctx):\n    return 1\n", "decorators"),
    ("STATE = {'n': 0}\ndef t(db, ctx):\n    STATE['n'] += 1\n    return STATE['n']\n", "literal constant"),
    ("import statistics\ndef t(db, ctx):\n    return statistics.quantiles([1.0, 2.0], n=20000000)\n",
     "not available"),
])
def test_no_code_runs_at_load_and_no_state_survives_a_call(src, reason):
    with pytest.raises(PolicyViolation, match=reason):
        load_tool(src, "t")


def test_literal_defaults_and_immutable_constants_are_fine():
    fn = load_tool("LIMIT = (1, 2)\nNAME = 'x'\ndef t(db, ctx, n=3):\n    return LIMIT[0] + n\n", "t")
    assert fn(None, None) == 4
