"""``scaleenv tasks generate|export`` and ``scaleenv eval``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from scaleenv_tui.cli import _err


def _domains(ws: Any, names: list[str], all_: bool) -> list[str]:
    have = ws.domain_names()
    if all_ or not names:
        return have
    missing = [n for n in names if n not in have]
    if missing:
        raise ValueError(f"no domain {', '.join(map(repr, missing))} in {ws.url} "
                         f"(domains: {', '.join(have) or 'none; run scaleenv synth first'})")
    return names


def _gen_job(report: Any, domain_json: str, n: int, max_chain: int, seed: int) -> tuple[list[str], dict]:
    from core.data.models import Domain
    from core.tasks.generator import TaskGenerator

    tasks, stats = TaskGenerator(Domain.model_validate_json(domain_json), seed=seed, max_chain=max_chain).generate(n)
    return [t.model_dump_json() for t in tasks], stats.to_dict()


def cmd_generate(args: argparse.Namespace) -> int:
    from core.data.store import Workspace, WorkspaceError
    from core.data.taskmodel import Task
    from core.runtime.sandbox import Limits, run_isolated_many

    try:
        ws = Workspace(args.workspace, create=False)
        names = _domains(ws, args.domains, args.all)
    except (WorkspaceError, ValueError) as e:
        _err(str(e))
        return 2
    if not names:
        _err(f"no domains in {ws.url}; run: scaleenv synth --all")
        return 2
    if args.n < 1 or args.max_chain < 1:
        _err("-n and --max-chain must be at least 1")
        return 2
    t0 = time.perf_counter()
    try:
        jobs = [(n, _gen_job, (ws.load_domain(n).model_dump_json(), args.n, args.max_chain, args.seed))
                for n in names]
    except WorkspaceError as e:
        _err(str(e))
        return 2
    if not args.json and sys.stderr.isatty():
        print(f"generating up to {args.n} tasks for {len(names)} domain(s)…", file=sys.stderr)
    res = run_isolated_many(jobs, workers=args.workers, limits=Limits(memory_mb=4096, wall_seconds=1800))
    out, failed = [], 0
    for name in names:
        r = res[name]
        if not r.ok:
            detail = r.error.strip() if os.environ.get("SCALEENV_DEBUG") else r.error.strip().splitlines()[0]
            _err(f"{name}: task generation failed: {detail} (set SCALEENV_DEBUG=1 for the traceback)")
            failed += 1
            continue
        tasks_json, stats = r.value
        ws.replace_tasks(name, [Task.model_validate_json(t) for t in tasks_json])
        out.append(stats)
        if not args.json:
            print(f"{name:24} verified {stats['verified']:4}/{stats['attempted']:<4} dropped {stats['dropped']:4}  "
                  f"distractors {stats['with_distractors']:4}  refusals {stats['refusals']:3}  "
                  f"max chain {stats['max_chain']}  {stats['seconds']:.1f} s")
    total = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"domains": out, "seconds": round(total, 3)}))
    else:
        print(f"{sum(s['verified'] for s in out)} verified tasks in {total:.1f} s")
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.data.store import Workspace, WorkspaceError

    try:
        ws = Workspace(args.workspace, create=False)
        tasks = ws.load_tasks(args.domain)
    except WorkspaceError as e:
        _err(str(e))
        return 2
    if args.status:
        tasks = [t for t in tasks if t.review.status == args.status]
    out = Path(args.out)
    if out.is_dir():
        _err(f"--out {out} is a directory; name a file, e.g. {out / (args.domain + '.jsonl')}")
        return 2
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            for t in tasks:
                f.write(t.model_dump_json() + "\n")
        os.replace(tmp, out)  # never leave a half-written export behind
    except OSError as e:
        _err(f"cannot write {out}: {e.strerror or e}")
        return 2
    finally:  # an error or an interrupt: the temporary file goes, the old export stays
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    print(json.dumps({"domain": args.domain, "tasks": len(tasks), "out": str(out)}) if args.json
          else f"wrote {len(tasks)} tasks to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from core.agents.agents import make_agent, run_episode
    from core.agents.user import USERS, make_user
    from core.data.store import Workspace, WorkspaceError
    from core.runtime.env import DomainRuntime, Environment

    try:
        ws = Workspace(args.workspace, create=False)
        names = _domains(ws, args.domains, args.all)
        if args.agent not in ("oracle", "random", "guesser"):
            raise ValueError(f"unknown agent {args.agent!r}")
        if args.user not in USERS:
            raise ValueError(f"unknown user {args.user!r}: use {', '.join(USERS)}")
    except (WorkspaceError, ValueError) as e:
        _err(str(e))
        return 2
    total = passed = 0
    per = []
    t0 = time.perf_counter()
    for name in names:
        try:
            tasks = ws.load_tasks(name)
            if not tasks:
                continue
            runtime = DomainRuntime(ws.load_domain(name))
        except WorkspaceError as e:
            _err(str(e))
            return 2
        for tool, why in runtime.refused.items():
            print(f"scaleenv: warning: {name}.{tool}: left out, the sandbox refuses its stored code: {why}",
                  file=sys.stderr)
        env = Environment(runtime)
        user = make_user(args.user, runtime.intents)
        ok = 0
        for i, task in enumerate(tasks):
            ep = run_episode(env, task, make_agent(args.agent, seed=args.seed * 100_003 + i, schema=runtime.schema),
                             user=user)
            ok += ep.reward.reward == 1.0
        env.close()
        per.append({"name": name, "tasks": len(tasks), "passed": ok, "pass_rate": round(ok / len(tasks), 4)})
        total += len(tasks)
        passed += ok
        if not args.json:
            print(f"{name:24} {ok:4}/{len(tasks):<4} {ok / len(tasks):.3f}")
    if total == 0:
        _err("no tasks to evaluate; run: scaleenv tasks generate --all")
        return 2
    rate = passed / total
    if args.json:
        print(json.dumps({"agent": args.agent, "user": args.user, "tasks": total, "passed": passed,
                          "pass_rate": round(rate, 4), "domains": per, "seconds": round(time.perf_counter() - t0, 3)}))
    else:
        print(f"{args.agent} ({args.user} user): {passed}/{total} passed, pass rate {rate:.3f}")
    return 0


def add_commands(sub: Any, common: Any) -> None:
    t = sub.add_parser("tasks", help="generate and export verified tasks (Phase 2)")
    tsub = t.add_subparsers(dest="tasks_command", metavar="SUBCOMMAND", required=True)
    g = tsub.add_parser("generate", help="generate verified tasks for domains in the workspace")
    g.add_argument("domains", nargs="*", metavar="DOMAIN")
    g.add_argument("--all", action="store_true", help="every domain in the workspace")
    g.add_argument("-n", type=int, default=100, help="verified tasks per domain (default 100)")
    g.add_argument("--max-chain", type=int, default=6, help="longest chain of tool calls (default 6)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    common(g)
    g.set_defaults(fn=cmd_generate)
    e = tsub.add_parser("export", help="write a domain's tasks as JSON lines")
    e.add_argument("domain", metavar="DOMAIN")
    e.add_argument("--out", required=True, metavar="FILE.jsonl")
    e.add_argument("--status", choices=["pending", "approved", "rejected"], help="only tasks with this review status")
    common(e)
    e.set_defaults(fn=cmd_export)

    v = sub.add_parser("eval", help="run an agent on the stored tasks and report the pass rate")
    v.add_argument("domains", nargs="*", metavar="DOMAIN")
    v.add_argument("--all", action="store_true", help="every domain (the default when none is named)")
    v.add_argument("--agent", default="oracle", choices=["oracle", "random", "guesser"],
                   help="oracle replays the ground truth; random calls random tools; guesser does nothing "
                        "and names every enum value (a reward-gaming floor)")
    # a bare --user means scripted, so "--user -k 2 scripted" (ask for a flag this command lacks) fails
    # on the unknown flag, not on --user's missing value
    v.add_argument("--user", nargs="?", const="scripted", default="scripted", choices=["scripted", "none"],
                   help="scripted (the default): a rule-based user answers what the agent asks and ends the "
                        "conversation (docs/tasks.md, The user); none: the agent's first message ends the episode")
    v.add_argument("--seed", type=int, default=0)
    common(v)
    v.set_defaults(fn=cmd_eval)
