"""The sandbox: hostile tool code is refused, endless loops time out, memory bombs die alone."""

from __future__ import annotations

import os
import re

import pytest

from core.data.db import DomainDB
from core.runtime.context import ToolContext
from core.runtime.invoke import ArgValidator, invoke
from core.runtime.sandbox import Limits, PolicyViolation, check_source, deadline, load_tool, run_isolated

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
    from core.data.seed import RowFactory

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
    from core.runtime.sandbox import SandboxTimeout

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
    assert (res.ok, res.value, res.error) == (False, None, "wall-clock limit of 1 s exceeded; process killed")


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
    from core.runtime.context import NotFound as NF

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


# ---------------------------------------------------------------- the policy, violation by violation

ALLOWED_MODULES = "(allowed: collections, functools, itertools, json, math, statistics)"
CONST = ("module level assignments must bind a name to a literal constant "
         "(a number, a string, or a tuple of them: nothing that calls could change)")
DEFAULTS = "decorators and computed default arguments are not allowed (defaults must be literals)"
POW = "'**' takes a constant right operand of at most 64"
SHIFT = "'<<' takes a constant right operand of at most 64"

# (what, source, every violation reported, in order)
VIOLATIONS = [
    ("two at once", "def t(db, ctx):\n    x = eval('1')\n    return open('f')\n",
     ["line 2: 'eval' is not allowed in tool code", "line 3: 'open' is not allowed in tool code"]),
    ("defined twice", "def t(db, ctx):\n    return 1\n\n\ndef t(db, ctx):\n    return 2\n",
     ["line 1: function 't' is defined twice"]),
    ("function and constant", "def t(db, ctx):\n    return 1\nt = 5\n", ["line 1: 't' is both a function and a constant"]),
    ("no such function", "def u(db, ctx):\n    return 1\n", ["line 1: the code must define a function named 't'"]),
    ("mutable constant", "import json\nX = [1, 2]\ndef t(db, ctx):\n    return X\n", [f"line 2: {CONST}"]),
    ("unpacking at module level", "A, B = 1, 2\ndef t(db, ctx):\n    return A\n", [f"line 1: {CONST}"]),
    ("annotated constant", "X: int = 1\ndef t(db, ctx):\n    return X\n",
     ["line 1: only functions, imports and constants at module level, not AnnAssign"]),
    ("module level call", "'''doc'''\nlen('x')\ndef t(db, ctx):\n    return 1\n",
     ["line 2: module level code does not run: only functions, imports and constants"]),
    ("module level if", "if True:\n    pass\ndef t(db, ctx):\n    return 1\n",
     ["line 1: only functions, imports and constants at module level, not If"]),
    ("decorator", "def w(f):\n    return f\n\n\n@w\ndef t(db, ctx):\n    return 1\n", [f"line 6: {DEFAULTS}"]),
    ("computed keyword-only default", "def t(db, ctx, *, n=len('ab')):\n    return n\n", [f"line 1: {DEFAULTS}"]),
    ("computed lambda default", "def t(db, ctx):\n    f = lambda x=len('ab'): x\n    return f()\n",
     [f"line 2: {DEFAULTS}"]),
    ("import inside", "def t(db, ctx):\n    import os\n    return 1\n", [f"line 2: import of 'os' is not allowed {ALLOWED_MODULES}"]),
    ("from os.path", "from os.path import join\ndef t(db, ctx):\n    return 1\n",
     [f"line 1: import of 'os.path' is not allowed {ALLOWED_MODULES}"]),
    ("relative import", "from . import helpers\ndef t(db, ctx):\n    return 1\n",
     [f"line 1: import of '' is not allowed {ALLOWED_MODULES}", "line 1: relative imports are not allowed"]),
    ("from json import codecs", "from json import codecs\ndef t(db, ctx):\n    return 1\n",
     ["line 1: json.codecs is not available to tool code"]),
    ("dotted import of an allowed module", "import json.decoder\ndef t(db, ctx):\n    return 1\n",
     ["line 1: import of 'json.decoder' is not allowed (import the module itself)"]),
    ("attribute through an import alias", "import json as j\ndef t(db, ctx):\n    x = 1\n    return j.codecs\n",
     ["line 4: json.codecs is not available to tool code"]),
    ("underscore name", "def t(db, ctx):\n    x = 1\n    return _x\n",
     ["line 3: names starting with an underscore ('_x') are not allowed"]),
    ("underscore function", "def _helper():\n    return 1\n\n\ndef t(db, ctx):\n    return 2\n",
     ["line 1: names starting with an underscore ('_helper') are not allowed"]),
    ("underscore argument", "def t(db, ctx, _secret=1):\n    return 1\n",
     ["line 1: names starting with an underscore ('_secret') are not allowed"]),
    ("underscore lambda argument", "def t(db, ctx):\n    f = lambda _a: 1\n    return f(2)\n",
     ["line 2: names starting with an underscore ('_a') are not allowed"]),
    ("setting an attribute", "def t(db, ctx):\n    x = db\n    x.y = 1\n",
     ["line 3: assigning or deleting attributes ('y') is not allowed in tool code"]),
    ("deleting an attribute", "def t(db, ctx):\n    x = 1\n    del ctx.now\n",
     ["line 3: assigning or deleting attributes ('now') is not allowed in tool code"]),
    ("underscore attribute", "def t(db, ctx):\n    x = 1\n    return db._db\n",
     ["line 3: attribute '_db' is not allowed (no underscore attributes)"]),
    ("connection attribute", "def t(db, ctx):\n    x = 1\n    return db.conn\n",
     ["line 3: attribute 'conn' is not allowed in tool code"]),
    ("class", "def t(db, ctx):\n    class A:\n        pass\n    return A\n",
     ["line 2: class definitions are not allowed in tool code"]),
    ("await", "def t(db, ctx):\n    return 1\nasync def u():\n    await u()\n",
     ["line 3: only functions, imports and constants at module level, not AsyncFunctionDef",
      "line 3: async code is not allowed in tool code", "line 4: async code is not allowed in tool code"]),
    ("global", "def t(db, ctx):\n    global n\n    return 1\n", ["line 2: global/nonlocal are not allowed in tool code"]),
    ("nonlocal", "def t(db, ctx):\n    n = 1\n    def u():\n        nonlocal n\n        n = 2\n    return n\n",
     ["line 4: global/nonlocal are not allowed in tool code"]),
    ("bare except", "def t(db, ctx):\n    try:\n        return 1\n    except:\n        return 2\n",
     ["line 4: a bare 'except:' is not allowed (catch Exception or a narrower type)"]),
    ("catching the time limit", "def t(db, ctx):\n    try:\n        return 1\n    except (ValueError, SandboxTimeout):\n"
     "        return 2\n", ["line 4: catching BaseException is not allowed"]),
    ("catching BaseException", "def t(db, ctx):\n    try:\n        return 1\n    except BaseException:\n        return 2\n",
     ["line 4: catching BaseException is not allowed"]),
    ("power of a variable", "def t(db, ctx, n=2):\n    x = 1\n    return 2 ** n\n", [f"line 3: {POW}"]),
    ("power of 65", "def t(db, ctx):\n    return 2 ** 65\n", [f"line 2: {POW}"]),
    ("**= 65", "def t(db, ctx):\n    x = 2\n    x **= 65\n    return x\n", [f"line 3: {POW}"]),
    ("<< 65", "def t(db, ctx):\n    return 1 << 65\n", [f"line 2: {SHIFT}"]),
    ("<<= 65", "def t(db, ctx):\n    x = 1\n    x <<= 64\n    x <<= 65\n    return x\n", [f"line 4: {SHIFT}"]),
]


@pytest.mark.parametrize("src,expected", [(s, v) for _, s, v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS])
def test_each_violation_is_reported_with_its_line(src, expected):
    with pytest.raises(PolicyViolation, match=re.escape(expected[0])) as ei:
        load_tool(src, "t")
    assert ei.value.violations == expected
    assert str(ei.value) == "; ".join(expected)


def test_a_syntax_error_is_a_violation_with_its_line():
    with pytest.raises(PolicyViolation, match="syntax error") as ei:
        check_source("def t(db, ctx):\n    return (\n")
    assert len(ei.value.violations) == 1
    assert ei.value.violations[0].startswith("line 2: syntax error: ")


# (what, source, what t(None, None) returns)
ALLOWED = [
    ("from json import dumps", "from json import dumps\ndef t(db, ctx):\n    return dumps([1])\n", "[1]"),
    ("import json as j", "import json as j\ndef t(db, ctx):\n    return j.loads('[2]')\n", [2]),
    ("import inside the function", "def t(db, ctx):\n    import math\n    return math.floor(2.7)\n", 2),
    ("powers and shifts up to 64", "def t(db, ctx, n=3):\n    x = 1\n    x <<= 64\n    x **= 1\n"
     "    return [2 ** 64, 4 ** 0.5, 1 << 64, 1024 >> n, x]\n", [2 ** 64, 2.0, 2 ** 64, 128, 2 ** 64]),
    ("constants", "'''A tool module.'''\nA = B = -1\nT = (1, ('x', 2.5))\ndef t(db, ctx):\n    return A + B, T\n",
     (-2, (1, ("x", 2.5)))),
    ("keyword-only argument without a default", "def helper(*, n, m=2):\n    return n + m\n\n\n"
     "def t(db, ctx):\n    return helper(n=1)\n", 3),
    ("catching ordinary errors", "def t(db, ctx):\n    try:\n        return [][0]\n    except (IndexError, KeyError):\n"
     "        return 'caught'\n", "caught"),
    ("a helper function and a lambda", "def helper(x):\n    return x * 2\n\n\ndef t(db, ctx):\n"
     "    f = lambda y: y + 1\n    return f(helper(3))\n", 7),
]


@pytest.mark.parametrize("src,value", [(s, v) for _, s, v in ALLOWED], ids=[a[0] for a in ALLOWED])
def test_allowed_code_is_not_refused(src, value):
    fn = load_tool(src, "t")
    assert fn(None, None) == value


def test_loading_keeps_a_docstring_and_refuses_a_name_that_is_not_the_function():
    fn = load_tool('def t(db, ctx):\n    """Say hello."""\n    return "hello"\n', "t")
    assert fn.__doc__ == "Say hello." and fn(None, None) == "hello"
    with pytest.raises(PolicyViolation, match="must define a function named 't'") as ei:
        load_tool("def t(db, ctx):\n    return 1\n\n\nimport json as t\n", "t")  # t ends up a module
    assert ei.value.violations == ["the code must define a function named 't'"]


def test_tool_code_can_raise_and_catch_the_error_types():
    from core.runtime.context import InvalidArgument, NotFound, PreconditionFailed, ToolError

    src = ("def t(db, ctx, which=''):\n"
           "    if which == 'nf':\n        raise NotFound('riders', 'RDR-9')\n"
           "    if which == 'pre':\n        raise PreconditionFailed('closed', observed={'riders.status': 'closed'})\n"
           "    if which == 'arg':\n        raise InvalidArgument('too big', argument='amount')\n"
           "    try:\n        raise PreconditionFailed('inner')\n    except ToolError as e:\n        return e.message\n")
    fn = load_tool(src, "t")
    assert fn(None, None) == "inner"
    with pytest.raises(NotFound, match="no riders record with id 'RDR-9'"):
        fn(None, None, "nf")
    with pytest.raises(PreconditionFailed, match="closed") as ei:
        fn(None, None, "pre")
    assert ei.value.observed == {"riders.status": "closed"}
    with pytest.raises(InvalidArgument, match="too big") as ei:
        fn(None, None, "arg")
    assert ei.value.argument == "amount"
    assert issubclass(InvalidArgument, ToolError)


def test_the_documented_builtins_are_there_and_the_dangerous_ones_are_not():
    from core.runtime.sandbox import SAFE_BUILTINS

    fn = load_tool(tool(
        "xs = sorted([3, 1, 2])\n"
        "return [len(xs), min(xs), max(xs), sum(xs), round(2.567, 1), abs(-2), int('4'), float('1.5'), str(5),\n"
        "        bool(0), dict(a=1), list((1,)), tuple([1]), set([1, 1]), frozenset([2]), list(enumerate('ab')),\n"
        "        list(zip('ab', 'cd')), list(map(abs, [-1])), list(filter(None, [0, 1])), any([0, 1]), all([1]),\n"
        "        isinstance(1, int), list(reversed(xs)), divmod(7, 2), repr('x'), list(range(3)), xs]"), "t")
    assert fn(None, None) == [3, 1, 3, 6, 2.6, 2, 4, 1.5, "5", False, {"a": 1}, [1], (1,), {1}, frozenset([2]),
                              [(0, "a"), (1, "b")], [("a", "c"), ("b", "d")], [1], [1], True, True, True,
                              [3, 2, 1], (3, 1), "'x'", [0, 1, 2], [1, 2, 3]]
    assert not {"open", "exec", "eval", "compile", "getattr", "setattr", "type", "object", "globals", "vars",
                "print", "input", "breakpoint", "memoryview", "bytearray", "help"} & set(SAFE_BUILTINS)
    assert SAFE_BUILTINS["__import__"] is not __import__


def test_range_is_capped_at_a_million_items():
    fn = load_tool("def t(db, ctx, n=0, step=1):\n    return len(range(0, n, step))\n", "t")
    assert fn(None, None, 1_000_000) == 1_000_000
    assert fn(None, None, 2_000_000, 2) == 1_000_000
    with pytest.raises(ValueError, match=r"^range\(\) of more than 1,000,000 items is not allowed in tool code$"):
        fn(None, None, 1_000_001)


# ---------------------------------------------------------------- stand-in modules


@pytest.fixture
def fresh_stand_ins(monkeypatch):
    """Stand-in modules are built once and cached; start each of these tests from an empty cache."""
    from core.runtime import sandbox

    monkeypatch.setattr(sandbox, "_PROXIES", {})


# What tool code may use of each module (docs/architecture.md, "The sandbox", layer 1).
STAND_IN_NAMES = {
    "math": ["ceil", "floor", "trunc", "sqrt", "fabs", "fsum", "isclose", "isfinite", "isinf", "isnan", "exp",
             "log", "log10", "log2", "pow", "copysign", "hypot", "pi", "e", "inf", "nan"],
    "json": ["dumps", "loads", "JSONDecodeError"],
    "statistics": ["mean", "fmean", "median", "median_low", "median_high", "mode", "multimode", "pstdev",
                   "pvariance", "stdev", "variance", "StatisticsError"],
    "itertools": ["accumulate", "chain", "compress", "dropwhile", "filterfalse", "groupby", "islice", "pairwise",
                  "starmap", "takewhile", "zip_longest"],
    "functools": ["reduce", "partial", "cmp_to_key"],
    "collections": ["Counter", "OrderedDict", "defaultdict", "deque", "namedtuple"],
}


@pytest.mark.parametrize("module", sorted(STAND_IN_NAMES))
def test_tool_code_gets_a_stand_in_holding_only_the_allowed_names(fresh_stand_ins, module):
    import importlib

    real = importlib.import_module(module)
    got = load_tool(tool(f"import {module}\nreturn {module}"), "t")(None, None)
    assert got is not real
    assert {n for n in vars(got) if not n.startswith("__")} == set(STAND_IN_NAMES[module])
    for name in STAND_IN_NAMES[module]:
        assert getattr(got, name) is getattr(real, name), name
    name = STAND_IN_NAMES[module][0]
    assert load_tool(tool(f"return {name}", f"from {module} import {name}\n"), "t")(None, None) is getattr(real, name)
    again = load_tool(tool(f"import {module}\nreturn {module}"), "t")(None, None)
    assert again is got  # built once, shared by every tool


# Reaching past the allow-list through the module object at run time: the policy sees only
# `m.codecs`, not `json.codecs`, so only the stand-in stops it.
RUNTIME_ESCAPES = [
    ("json.codecs.open reads /etc/passwd", "import json\n", "m = json\nreturn m.codecs.open('/etc/passwd').read()",
     "codecs"),
    ("statistics.sys reaches os", "import statistics\n", "m = statistics\nreturn m.sys.modules['os'].getcwd()", "sys"),
    ("itertools.count never ends", "import itertools\n", "m = itertools\nreturn max(m.count())", "count"),
    ("math.factorial spins in C", "import math\n", "m = math\nreturn m.factorial(10 ** 6)", "factorial"),
    ("collections.abc", "import collections\n", "m = collections\nreturn m.abc", "abc"),
    ("json.load reads a file object", "from json import loads\nimport json\n", "m = [json][0]\nreturn m.load",
     "load"),
]


@pytest.mark.parametrize("header,body,attr", [(h, b, a) for _, h, b, a in RUNTIME_ESCAPES],
                         ids=[e[0] for e in RUNTIME_ESCAPES])
def test_names_outside_the_allow_list_do_not_exist_at_run_time(fresh_stand_ins, header, body, attr):
    fn = load_tool(tool(body, header), "t")  # the policy cannot see through the alias
    with pytest.raises(AttributeError, match=f"has no attribute '{attr}'"), deadline(2.0):
        fn(None, None)


def test_the_import_hook_refuses_what_the_policy_would(fresh_stand_ins):
    from core.runtime.sandbox import SAFE_BUILTINS

    hook = SAFE_BUILTINS["__import__"]
    assert hook("json").dumps([1]) == "[1]"
    assert hook("json", None, None, ("dumps", "loads")).loads("2") == 2
    with pytest.raises(ImportError, match=r"^import of 'os' is not allowed$"):
        hook("os")
    with pytest.raises(ImportError, match=r"^import of 'json' is not allowed$"):
        hook("json", None, None, ("dumps",), 1)  # relative
    with pytest.raises(ImportError, match=r"^json\.codecs is not available to tool code$"):
        hook("json", None, None, ("dumps", "codecs"), 0)


def test_a_dotted_from_import_is_refused_by_the_policy():
    with pytest.raises(PolicyViolation, match="json.decoder"):
        load_tool(tool("return scanstring", "from json.decoder import scanstring\n"), "t")


# ---------------------------------------------------------------- instrumentation and the deadline


@pytest.fixture
def ticks(monkeypatch):
    """Count the deadline checks instrumented code makes."""
    from core.runtime import sandbox

    seen: list[int] = []
    monkeypatch.setattr(sandbox, "_tick", lambda: seen.append(1))
    return seen


# (what, body of t, ticks: one per function entry, per while iteration, per item a for or comprehension takes)
TICKS = [
    ("function entry", "return 1", 1),
    ("while body, even when it continues", "items = [1, 1, 1]\nwhile items:\n    if items.pop():\n        continue\n"
     "    return 0\nreturn 3", 4),
    ("for loop", "n = 0\nfor i in range(5):\n    n += i\nreturn n", 6),
    ("comprehension", "return sum([i for i in range(4)])", 5),
    ("nested comprehension", "return len([(i, j) for i in range(2) for j in range(3)])", 9),
    ("inner functions", "def u():\n    return 1\nreturn u() + u()", 3),
]


@pytest.mark.parametrize("body,n", [(b, n) for _, b, n in TICKS], ids=[t[0] for t in TICKS])
def test_every_function_entry_loop_step_and_item_ticks(ticks, body, n):
    fn = load_tool(tool(body), "t")
    ticks.clear()
    fn(None, None)
    assert len(ticks) == n


def test_a_docstring_stays_first_and_the_entry_still_ticks(ticks):
    fn = load_tool('def t(db, ctx):\n    """Doc."""\n    return 1\n', "t")
    ticks.clear()
    assert fn(None, None) == 1
    assert fn.__doc__ == "Doc." and len(ticks) == 1


def test_an_expired_deadline_stops_a_tool_at_its_entry_and_nesting_restores_the_outer_one():
    from core.runtime.sandbox import SandboxTimeout

    fn = load_tool(tool("return 1"), "t")
    with deadline(0):
        with pytest.raises(SandboxTimeout, match=r"^time limit of 0 s exceeded$"):
            fn(None, None)
        with deadline(60):
            assert fn(None, None) == 1
        with pytest.raises(SandboxTimeout, match=r"^time limit of 0 s exceeded$"):
            fn(None, None)  # the outer deadline (and its limit) is back
    assert fn(None, None) == 1  # no deadline once the block ends


def test_deadlines_are_per_thread_and_a_new_thread_starts_without_one():
    import threading

    from core.runtime.sandbox import SandboxTimeout

    fn = load_tool(tool("n = 0\nwhile True:\n    n += 1"), "t")
    quick = load_tool(tool("return 7"), "t")
    out: dict[str, object] = {}

    def worker():
        out["free"] = quick(None, None)  # this thread never set a deadline
        try:
            with deadline(0.05):
                fn(None, None)
        except SandboxTimeout as e:
            out["stopped"] = str(e)
        with deadline(60):
            out["nested"] = quick(None, None)
        out["after"] = quick(None, None)

    with deadline(0):  # an expired deadline in this thread does not reach the other one
        th = threading.Thread(target=worker)
        th.start()
        th.join(30)
    assert out == {"free": 7, "stopped": "time limit of 0.05 s exceeded", "nested": 7, "after": 7}


# ---------------------------------------------------------------- isolated runs


def _report_and_add(report, a, b):
    report({"step": 1})
    report({"step": 2})
    return a + b


def _die(report, code):
    os._exit(code)


def _overlap(report, folder, name):
    """Mark this job running, wait a little, and count the jobs running meanwhile."""
    import time
    from pathlib import Path

    mine = Path(folder) / f"{name}.running"
    mine.write_text("")
    time.sleep(0.25)
    seen = len(list(Path(folder).glob("*.running")))
    mine.unlink()
    return seen


def test_isolated_jobs_report_progress_under_their_key_and_return_their_value():
    from core.runtime.sandbox import run_isolated_many

    progress = []
    res = run_isolated_many([("a", _report_and_add, (1, 2)), ("b", _report_and_add, (10, 20))], workers=2,
                            on_progress=lambda key, msg: progress.append((key, msg)))
    assert {k: (r.ok, r.value, r.error) for k, r in res.items()} == {"a": (True, 3, ""), "b": (True, 30, "")}
    assert [m for k, m in progress if k == "a"] == [{"step": 1}, {"step": 2}]
    assert [m for k, m in progress if k == "b"] == [{"step": 1}, {"step": 2}]
    assert run_isolated_many([("only", _report_and_add, (4, 5))], workers=3)["only"].value == 9


def test_a_job_whose_process_dies_fails_alone_with_its_exit_code():
    from core.runtime.sandbox import IsolatedResult, run_isolated_many

    res = run_isolated_many([("dies", _die, (3,)), ("lives", _report_and_add, (1, 1))], workers=2)
    assert res["dies"] == IsolatedResult(False, None, "isolated process died (exit code 3)")
    assert res["lives"] == IsolatedResult(True, 2, "")


@pytest.mark.parametrize("workers,jobs,most", [(1, 2, 1), (None, 3, 2)], ids=["one worker", "default: two"])
def test_isolated_jobs_run_at_most_workers_at_a_time(tmp_path, workers, jobs, most):
    from core.runtime.sandbox import run_isolated_many

    kw = {} if workers is None else {"workers": workers}
    res = run_isolated_many([(i, _overlap, (str(tmp_path), str(i))) for i in range(jobs)], **kw)
    assert sorted(res) == list(range(jobs)) and all(r.ok for r in res.values())
    assert max(r.value for r in res.values()) <= most


def test_the_child_limits_its_address_space_and_sends_back_what_happened(monkeypatch):
    """`_child` is what each forked process runs; here it runs in this process with setrlimit recorded."""
    import multiprocessing
    import resource

    from core.runtime import sandbox
    from core.runtime.sandbox import IsolatedResult

    limits = []
    monkeypatch.setattr(sandbox.resource, "setrlimit", lambda which, lim: limits.append((which, lim)))

    def run(job, args, mb):
        reader, writer = multiprocessing.Pipe(duplex=False)
        sandbox._child(writer, job, args, mb)
        out = []
        with pytest.raises(EOFError):  # the child closes its end when done
            while True:
                out.append(reader.recv())
        return out

    assert run(_report_and_add, (2, 3), 1_000_000) == [
        ("progress", {"step": 1}), ("progress", {"step": 2}), ("done", IsolatedResult(True, 5))]
    [(which, (soft, hard))] = limits
    assert which == resource.RLIMIT_AS and soft == hard
    assert abs(soft - sandbox._vsize() - 1_000_000 * 2 ** 20) < 256 * 2 ** 20  # what it maps now + the budget

    def oom(report):
        raise MemoryError

    assert run(oom, (), 7) == [("done", IsolatedResult(False, error="memory limit exceeded (7 MiB)"))]

    def inner():
        raise RuntimeError("kaput")

    def middle():
        inner()

    def crash(report):
        middle()

    [(kind, res)] = run(crash, (), 7)
    assert kind == "done" and res.ok is False and res.value is None
    assert res.error.startswith("RuntimeError: kaput\nTraceback (most recent call last):\n")
    # the three frames nearest the failure, not the sandbox's own
    assert re.findall(r'^  File ".*", line \d+, in (\w+)$', res.error, re.M) == ["crash", "middle", "inner"]


def test_the_address_space_measure_is_this_process_vm_size():
    from pathlib import Path

    from core.runtime import sandbox

    def vm_size() -> int:
        return int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

    before, got, after = vm_size(), sandbox._vsize(), vm_size()
    assert min(before, after) - 2 ** 20 <= got <= max(before, after) + 2 ** 20
