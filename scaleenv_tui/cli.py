"""The ``scaleenv`` command line.

    scaleenv synth BLUEPRINT... | --all [--workspace DIR] [--seed N] [--json]
    scaleenv domains [--workspace DIR] [--json]
    scaleenv tasks generate DOMAIN... | --all [-n N] [--max-chain L] [--seed S] [--json]
    scaleenv tasks export DOMAIN --out FILE.jsonl
    scaleenv eval [DOMAIN...] --agent oracle|random [--json]

With ``--json`` stdout carries exactly one JSON object; progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_domains"


def _err(msg: str) -> None:
    print(f"scaleenv: error: {msg}", file=sys.stderr)


def sample_blueprints() -> list[Path]:
    return sorted(SAMPLE_DIR.glob("*.yaml"))


class Progress:
    """A progress display on a terminal (stderr); silent otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.bars: dict[str, Any] = {}
        self.progress: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.progress = RichProgress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                                         TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                                         console=Console(stderr=True), transient=False)
            self.progress.__enter__()
        return self

    def add(self, key: str, total: int) -> None:
        if self.progress:
            self.bars[key] = self.progress.add_task(key, total=total, note="")

    def update(self, key: str, done: int, total: int | None = None, note: str = "") -> None:
        if self.progress and key in self.bars:
            self.progress.update(self.bars[key], completed=done, total=total, note=note)

    def __exit__(self, *exc: Any) -> None:
        if self.progress:
            self.progress.__exit__(*exc)


# ---------------------------------------------------------------------- synth


def cmd_synth(args: argparse.Namespace) -> int:
    from core.data.store import Workspace, WorkspaceError
    from core.spec.blueprint import BlueprintError, load_blueprint
    from core.synthesis.backends import BackendUnavailable, get_backend
    from core.synthesis.synth import SynthOptions, synthesize_many

    if not (0 < args.scale <= 1000):
        _err(f"--scale must be a number above 0 and at most 1000, got {args.scale}")
        return 2
    if args.workers < 1:
        _err("--workers must be at least 1")
        return 2
    paths = [Path(p) for p in args.blueprints]
    if args.all:
        paths += sample_blueprints()
    if not paths:
        _err("name blueprint files, or --all for the sample domains")
        return 2
    try:
        backend = get_backend(args.backend)
        ws = Workspace(args.workspace)
    except (BackendUnavailable, WorkspaceError) as e:
        _err(str(e))
        return 2
    blueprints, failed = [], 0
    for p in paths:
        try:
            blueprints.append(load_blueprint(p))
        except BlueprintError as e:
            _err(str(e))
            failed += 1
    seen: set[str] = set()
    for bp in blueprints:
        if bp.name in seen:
            _err(f"{bp.path}: domain {bp.name!r} is defined twice")
            return 2
        seen.add(bp.name)
    t0 = time.perf_counter()
    summaries = []
    with Progress(not args.json) as prog:
        for bp in blueprints:
            prog.add(bp.name, len(bp.operations))

        def on_progress(name: str, msg: dict) -> None:
            prog.update(name, msg["done"], msg["total"], msg["tool"])

        results = synthesize_many(blueprints, SynthOptions(seed=args.seed, scale=args.scale), backend,
                                  workers=args.workers, on_progress=on_progress)
        for bp in blueprints:
            d = results[bp.name]
            if isinstance(d, str):
                detail = d.strip() if os.environ.get("SCALEENV_DEBUG") else d.strip().splitlines()[0]
                _err(f"{bp.path}: synthesis failed: {detail}")
                failed += 1
                continue
            ws.save_domain(d)
            st = d.stats()
            summaries.append(st)
            prog.update(bp.name, st.tools, st.tools, f"{st.tools_passed}/{st.tools} tools passed")
            for t in d.tools:
                if t.status != "passed":
                    print(f"  {bp.name}.{t.spec.name}: rejected: {t.reason}", file=sys.stderr)
    total = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"domains": [s.model_dump() for s in summaries], "seconds": round(total, 3),
                          "workspace": ws.url}))
    elif summaries:
        _print_domains(summaries)
        print(f"\n{len(summaries)} domain(s) synthesized in {total:.1f} s into {ws.url}")
    return 1 if failed else 0


def _print_domains(stats: list[Any], counts: dict[str, dict[str, int]] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Domains")
    cols = ["domain", "tables", "rows", "tools", "passed", "tests", "passed ", "edges", "density", "s"]
    if counts is not None:
        cols += ["tasks", "approved"]
    for col in cols:
        if col == "domain":
            t.add_column(col, no_wrap=True, min_width=max(len(s.name) for s in stats) if stats else 6)
        else:
            t.add_column(col, justify="right")
    for s in stats:
        row = [s.name, str(s.tables), str(s.rows), str(s.tools), str(s.tools_passed), str(s.tests),
               str(s.tests_passed), str(s.edges), f"{s.density:.3f}", f"{s.seconds:.2f}"]
        if counts is not None:
            c = counts.get(s.name, {})
            row += [str(c.get("tasks", 0)), str(c.get("approved", 0))]
        t.add_row(*row)
    Console(width=max(110, Console().width)).print(t)


def cmd_domains(args: argparse.Namespace) -> int:
    from core.data.store import Workspace, WorkspaceError

    try:
        ws = Workspace(args.workspace, create=False)
        stats = ws.list_domains()
        counts = ws.task_counts()
    except WorkspaceError as e:
        _err(str(e))
        return 2
    empty = {"tasks": 0, "pending": 0, "approved": 0, "rejected": 0}
    if args.json:
        print(json.dumps({"domains": [{**s.model_dump(), **counts.get(s.name, empty)} for s in stats],
                          "workspace": ws.url}))
    elif not stats:
        print(f"no domains in {ws.url}; run: scaleenv synth --all")
    else:
        _print_domains(stats, counts)
    return 0


# ---------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """Usage errors are one ``scaleenv: error:`` line naming the command, like every other error (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        cmd = self.prog.removeprefix("scaleenv").strip()
        _err(f"{cmd + ': ' if cmd else ''}{message} (see: {self.prog} --help)")
        raise SystemExit(2)


def _version() -> str:
    """The installed distribution's version (pyproject.toml), or "unknown" outside an install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scaleenv")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scaleenv", description="Synthesize, curate and serve tool-use environments.")
    p.add_argument("--version", action="version", version=f"scaleenv {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--workspace", metavar="DIR",
                        help="workspace directory or SQLAlchemy URL (default: $SCALEENV_WORKSPACE or "
                             "./scaleenv-workspace)")
        sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    s = sub.add_parser("synth", help="synthesize domains from blueprints (Phase 1)")
    s.add_argument("blueprints", nargs="*", metavar="BLUEPRINT", help="blueprint YAML files")
    s.add_argument("--all", action="store_true", help="every sample domain shipped in sample_domains/")
    s.add_argument("--seed", type=int, default=0, help="seed for data and tests (default 0)")
    s.add_argument("--scale", type=float, default=1.0, help="multiply the seed row counts (default 1)")
    s.add_argument("--backend", default="procedural", help="generation backend (default: procedural)")
    s.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel domains")
    common(s)
    s.set_defaults(fn=cmd_synth)

    d = sub.add_parser("domains", help="list the domains in the workspace")
    common(d)
    d.set_defaults(fn=cmd_domains)

    try:
        from scaleenv_tui import cli_tasks
    except ImportError:  # pragma: no cover - tasks arrive with Phase 2
        cli_tasks = None
    if cli_tasks is not None:
        cli_tasks.add_commands(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 0
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        _err("interrupted; nothing half-written was kept")
        return 130
    except BrokenPipeError:  # e.g. `scaleenv domains --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
