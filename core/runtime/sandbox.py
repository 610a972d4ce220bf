"""The sandbox for tool code: an AST policy, instrumented loading, and isolated execution.

Tool code is untrusted (an LLM may have written it). Before it runs:

1. :func:`check_source` applies the policy: imports only from an allow-list (and of each
   module only an allow-listed set of names); no names or
   attributes starting with an underscore (so no ``__class__``/``__subclasses__`` escapes and
   no reaching the connection behind :class:`core.runtime.context.ToolDB`); no ``open``, ``exec``,
   ``eval``, ``compile``, ``globals``, ``getattr``…; no frame/code attributes; no
   ``str.format`` (format strings can read attributes); no classes, ``global``, bare
   ``except`` or ``except BaseException`` (which could swallow the time limit); no huge powers.
2. :func:`load_tool` instruments every loop and function entry with a deadline check and
   executes the module with a small set of safe builtins.
3. :func:`run_isolated` runs a job in a forked process with an address-space limit and a
   wall-clock limit, for testing fresh code.
"""

from __future__ import annotations

import ast
import multiprocessing as mp
import os
import resource
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.runtime.context import InvalidArgument, NotFound, PreconditionFailed, ToolError

FORBIDDEN_NAMES = {
    "open", "exec", "eval", "compile", "globals", "locals", "vars", "getattr", "setattr", "delattr",
    "hasattr", "__import__", "input", "breakpoint", "help", "memoryview", "type", "object", "super",
    "classmethod", "staticmethod", "property", "dir", "id", "exit", "quit", "print", "bytearray",
    "__builtins__", "__loader__", "__spec__",
}
FORBIDDEN_ATTRS = {
    "format", "format_map", "mro", "gi_frame", "gi_code", "gi_yieldframe", "cr_frame", "cr_code",
    "ag_frame", "ag_code", "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "tb_frame",
    "tb_next", "co_code", "func_globals", "func_code", "conn", "connection", "engine",
}
MAX_POW = 64


class PolicyViolation(ValueError):
    """Code the policy refuses; ``violations`` lists each reason with its line."""

    def __init__(self, violations: list[str]):
        self.violations = violations
        super().__init__("; ".join(violations))


class SandboxTimeout(BaseException):  # BaseException: `except Exception` in tool code cannot catch it
    """The tool ran past its time limit."""


@dataclass
class Limits:
    seconds: float = 2.0  # per tool call
    memory_mb: int = 1024  # for isolated runs (added to what the process already maps)
    wall_seconds: float = 120.0  # for a whole isolated job


# ---------------------------------------------------------------- policy


def check_source(source: str, expect: str | None = None) -> ast.Module:
    """Parse and check tool source; return the tree or raise :class:`PolicyViolation`."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise PolicyViolation([f"line {e.lineno}: syntax error: {e.msg}"]) from None
    bad: list[str] = []

    def no(node: ast.AST, why: str) -> None:
        bad.append(f"line {getattr(node, 'lineno', '?')}: {why}")

    modules: dict[str, str] = {}  # local name -> allowed module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in MODULE_ALLOW:
                    modules[a.asname or a.name] = a.name
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if len(names) != len(node.targets) or not _literal(node.value) or not _immutable(node.value):
                no(node, "module level assignments must bind a name to a literal constant "
                         "(a number, a string, or a tuple of them: nothing that calls could change)")
        elif isinstance(node, ast.Expr):
            if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                no(node, "module level code does not run: only functions, imports and constants")
        elif not isinstance(node, ast.FunctionDef | ast.Import | ast.ImportFrom):
            no(node, f"only functions, imports and constants at module level, not {type(node).__name__}")
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    for name in {n for n in defined if defined.count(n) > 1}:
        bad.append(f"line 1: function {name!r} is defined twice")
    bound = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    for name in bound & set(defined):
        bad.append(f"line 1: {name!r} is both a function and a constant")
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.Lambda) and (
                getattr(node, "decorator_list", None)
                or not all(_literal(d) for d in [*node.args.defaults, *[k for k in node.args.kw_defaults if k]])):
            no(node, "decorators and computed default arguments are not allowed (defaults must be literals)")
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in mods:
                if m.split(".")[0] in MODULE_ALLOW and m not in MODULE_ALLOW:  # import json.decoder
                    no(node, f"import of {m!r} is not allowed (import the module itself)")
                elif m not in MODULE_ALLOW:
                    no(node, f"import of {m!r} is not allowed (allowed: {', '.join(sorted(MODULE_ALLOW))})")
            if isinstance(node, ast.ImportFrom) and node.level:
                no(node, "relative imports are not allowed")
            if isinstance(node, ast.ImportFrom) and (node.module or "") in MODULE_ALLOW:
                for a in node.names:
                    if a.name not in MODULE_ALLOW[node.module]:
                        no(node, f"{node.module}.{a.name} is not available to tool code")
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_NAMES:
                no(node, f"{node.id!r} is not allowed in tool code")
            elif node.id.startswith("_"):
                no(node, f"names starting with an underscore ({node.id!r}) are not allowed")
        elif isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            no(node, f"assigning or deleting attributes ({node.attr!r}) is not allowed in tool code")
        elif isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if base in modules and node.attr not in MODULE_ALLOW[modules[base]]:
                no(node, f"{modules[base]}.{node.attr} is not available to tool code")
            elif node.attr.startswith("_"):
                no(node, f"attribute {node.attr!r} is not allowed (no underscore attributes)")
            elif node.attr in FORBIDDEN_ATTRS:
                no(node, f"attribute {node.attr!r} is not allowed in tool code")
        elif isinstance(node, ast.FunctionDef | ast.Lambda | ast.arg):
            name = getattr(node, "name", None) or getattr(node, "arg", None)
            if name and name.startswith("_"):
                no(node, f"names starting with an underscore ({name!r}) are not allowed")
        elif isinstance(node, ast.ClassDef):
            no(node, "class definitions are not allowed in tool code")
        elif isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
            no(node, "async code is not allowed in tool code")
        elif isinstance(node, ast.Global | ast.Nonlocal):
            no(node, "global/nonlocal are not allowed in tool code")
        elif isinstance(node, ast.ExceptHandler):
            if node.type is None:
                no(node, "a bare 'except:' is not allowed (catch Exception or a narrower type)")
            elif any(isinstance(n, ast.Name) and n.id in ("BaseException", "SandboxTimeout")
                     for n in ast.walk(node.type)):
                no(node, "catching BaseException is not allowed")
        elif isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Pow | ast.LShift):
            r = node.right if isinstance(node, ast.BinOp) else node.value
            sym = "**" if isinstance(node.op, ast.Pow) else "<<"
            if not (isinstance(r, ast.Constant) and isinstance(r.value, int | float) and abs(r.value) <= MAX_POW):
                no(node, f"'{sym}' takes a constant right operand of at most {MAX_POW}")
    if expect is not None and not any(isinstance(n, ast.FunctionDef) and n.name == expect for n in tree.body):
        bad.append(f"line 1: the code must define a function named {expect!r}")
    if bad:
        raise PolicyViolation(bad)
    return tree


def _immutable(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple):
        return all(_immutable(e) for e in node.elts)
    return isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)


def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


# ---------------------------------------------------------------- instrumentation

_local = threading.local()


def _tick() -> None:
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.perf_counter() > deadline:
        raise SandboxTimeout(f"time limit of {_local.limit:g} s exceeded")


def _iter(it: Any):
    for x in it:
        _tick()
        yield x


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > 1_000_000:
        raise ValueError("range() of more than 1,000,000 items is not allowed in tool code")
    return r


class _Instrument(ast.NodeTransformer):
    def _tick_stmt(self) -> ast.stmt:
        return ast.Expr(ast.Call(ast.Name("_sbx_tick", ast.Load()), [], []))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(1 if ast.get_docstring(node) else 0, self._tick_stmt())
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, self._tick_stmt())
        return node

    def visit_For(self, node: ast.For) -> ast.AST:
        self.generic_visit(node)
        node.iter = ast.Call(ast.Name("_sbx_iter", ast.Load()), [node.iter], [])
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.iter = ast.Call(ast.Name("_sbx_iter", ast.Load()), [node.iter], [])
        return node


# What tool code may use of each allowed module. Tool code gets a stand-in module holding only
# these names, so module attributes that lead elsewhere (json.codecs, statistics.sys, re.enum…)
# do not exist for it, and neither do infinite iterators that would spin inside C code.
MODULE_ALLOW: dict[str, set[str]] = {
    # no factorial/comb/perm: huge arguments spin in C, out of the deadline's reach; no `re` for the
    # same reason (a catastrophic pattern backtracks inside the regex engine)
    # (no prod, no decimal: huge products and Decimal('1e3000000') -> int spin in C as well)
    "math": {"ceil", "floor", "trunc", "sqrt", "fabs", "fsum", "isclose", "isfinite", "isinf", "isnan",
             "exp", "log", "log10", "log2", "pow", "copysign", "hypot", "pi", "e", "inf", "nan"},
    "json": {"dumps", "loads", "JSONDecodeError"},
    # (no quantiles: its pure-Python loop runs in the standard library, where no tick reaches)
    "statistics": {"mean", "fmean", "median", "median_low", "median_high", "mode", "multimode", "pstdev",
                   "pvariance", "stdev", "variance", "StatisticsError"},
    # no count/cycle/repeat (endless) and no product/permutations/combinations (explode inside C)
    "itertools": {"accumulate", "chain", "compress", "dropwhile", "filterfalse", "groupby", "islice", "pairwise",
                  "starmap", "takewhile", "zip_longest"},
    "functools": {"reduce", "partial", "cmp_to_key"},
    "collections": {"Counter", "OrderedDict", "defaultdict", "deque", "namedtuple"},
}
_PROXIES: dict[str, Any] = {}


def _proxy(name: str) -> Any:
    mod = _PROXIES.get(name)
    if mod is None:
        import types

        real = __import__(name)
        mod = types.ModuleType(f"sandboxed {name}")
        for attr in sorted(MODULE_ALLOW[name]):
            setattr(mod, attr, getattr(real, attr))
        _PROXIES[name] = mod
    return mod


def _guarded_import(name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (), level: int = 0):
    if name not in MODULE_ALLOW or level:
        raise ImportError(f"import of {name!r} is not allowed")
    mod = _proxy(name)
    for attr in fromlist or ():
        if attr not in MODULE_ALLOW[name]:
            raise ImportError(f"{name}.{attr} is not available to tool code")
    return mod


SAFE_BUILTINS: dict[str, Any] = {
    n: __builtins__[n] if isinstance(__builtins__, dict) else getattr(__builtins__, n)
    for n in ("len", "min", "max", "sum", "sorted", "round", "abs", "int", "float", "str", "bool", "dict",
              "list", "tuple", "set", "frozenset", "enumerate", "zip", "map", "filter", "any", "all",
              "isinstance", "reversed", "divmod", "repr", "Exception", "ValueError", "KeyError",
              "TypeError", "IndexError", "ZeroDivisionError", "ArithmeticError", "LookupError",
              "True", "False", "None")
}
SAFE_BUILTINS["range"] = _range
SAFE_BUILTINS["__import__"] = _guarded_import


def load_tool(source: str, name: str) -> Callable[..., Any]:
    """Check, instrument and load tool source; return the function named ``name``."""
    tree = _Instrument().visit(check_source(source, expect=name))
    ast.fix_missing_locations(tree)
    code = compile(tree, f"<tool {name}>", "exec")
    ns: dict[str, Any] = {
        "__builtins__": SAFE_BUILTINS, "__name__": f"tool_{name}",
        "NotFound": NotFound, "PreconditionFailed": PreconditionFailed, "ToolError": ToolError,
        "InvalidArgument": InvalidArgument, "_sbx_tick": _tick, "_sbx_iter": _iter,
    }
    with deadline(1.0):  # the module body holds only literals, but keep loading bounded all the same
        exec(code, ns)  # noqa: S102 - the policy above is what makes this safe
    fn = ns.get(name)
    if not callable(fn):
        raise PolicyViolation([f"the code must define a function named {name!r}"])
    return fn


class deadline:
    """``with deadline(2.0): tool(...)`` bounds instrumented tool code in this thread."""

    __slots__ = ("seconds", "prev")

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self) -> None:
        self.prev = getattr(_local, "deadline", None), getattr(_local, "limit", None)
        _local.deadline = time.perf_counter() + self.seconds
        _local.limit = self.seconds

    def __exit__(self, *exc: Any) -> None:
        _local.deadline, _local.limit = self.prev


# ---------------------------------------------------------------- isolated runs


@dataclass
class IsolatedResult:
    ok: bool
    value: Any = None
    error: str = ""


def _vsize() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _child(conn: Any, job: Callable[..., Any], args: tuple, memory_mb: int) -> None:
    def report(msg: Any) -> None:
        conn.send(("progress", msg))

    try:
        limit = _vsize() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        value = job(report, *args)
        conn.send(("done", IsolatedResult(True, value)))
    except MemoryError:
        conn.send(("done", IsolatedResult(False, error=f"memory limit exceeded ({memory_mb} MiB)")))
    except BaseException as e:  # report anything, the parent decides
        tb = traceback.format_exc(limit=-3)
        conn.send(("done", IsolatedResult(False, error=f"{type(e).__name__}: {e}\n{tb}")))
    finally:
        conn.close()


def run_isolated_many(jobs: list[tuple[Any, Callable[..., Any], tuple]], *, workers: int = 2,
                      limits: Limits | None = None,
                      on_progress: Callable[[Any, Any], None] | None = None) -> dict[Any, IsolatedResult]:
    """Run each ``job(report, *args)`` in its own forked child, ``workers`` at a time.

    Each child gets an address-space limit and a wall-clock limit; ``report(msg)`` inside the
    job reaches ``on_progress(key, msg)`` here. A child that dies, overruns or runs out of
    memory yields a failed :class:`IsolatedResult` for its key; the others go on.
    """
    from multiprocessing.connection import wait

    limits = limits or Limits()
    ctx = mp.get_context("fork")
    pending = list(jobs)
    running: dict[Any, tuple[Any, Any, float]] = {}  # conn -> (key, proc, started)
    results: dict[Any, IsolatedResult] = {}

    def start() -> None:
        key, job, args = pending.pop(0)
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, job, args, limits.memory_mb), daemon=True)
        proc.start()
        child.close()
        running[parent] = (key, proc, time.monotonic())

    def finish(conn: Any, res: IsolatedResult) -> None:
        key, proc, _ = running.pop(conn)
        conn.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        results[key] = res

    while pending or running:
        while pending and len(running) < max(1, workers):
            start()
        now = time.monotonic()
        for conn, (_key, proc, started) in list(running.items()):
            if now - started > limits.wall_seconds:
                proc.kill()
                finish(conn, IsolatedResult(False, error=f"wall-clock limit of {limits.wall_seconds:g} s exceeded; "
                                                         "process killed"))
        for conn in wait(list(running), timeout=0.5):
            key = running[conn][0]
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                proc = running[conn][1]
                proc.join(5)
                finish(conn, IsolatedResult(False, error=f"isolated process died (exit code {proc.exitcode})"))
                continue
            if kind == "progress":
                if on_progress:
                    on_progress(key, payload)
            else:
                finish(conn, payload)
    return results


def run_isolated(job: Callable[..., Any], *args: Any, limits: Limits | None = None) -> IsolatedResult:
    """Run ``job(*args)`` in a forked child with memory and wall-clock limits."""
    return run_isolated_many([(0, lambda report, *a: job(*a), args)], workers=1, limits=limits)[0]
