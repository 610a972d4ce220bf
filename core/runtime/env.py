"""The runtime: environments agents act in, one per task, cheap to create and to reset.

    runtime = DomainRuntime(domain)          # once per domain: compiled tools, seed snapshot
    env = Environment(runtime, task)
    obs = env.reset()                        # policy, tools, the user's first message
    out = env.step({"name": "get_rider", "arguments": {"rider_id": "RDR-0001"}})
    said = env.reply("What is your email?")  # the scripted user: {"user": "My email is ...", "done": False}
    reward = env.evaluate(messages)          # Reward(reward=1.0 | 0.0, reasons=[...])

``reset`` restores the task's initial state by rolling back the episode's transaction (or, for a
new task, by deserializing its snapshot); ``step`` validates the arguments against the tool's
JSON schema and runs it in a savepoint; errors come back as data, never as exceptions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.agents.user import STOP, ScriptedUser, goal_intents
from core.data.db import DomainDB, diff_states
from core.data.models import Domain, ToolSpec
from core.data.taskmodel import StateDelta, Task
from core.evaluation.reward import Reward, evaluate
from core.runtime.context import ToolContext, ToolDB
from core.runtime.invoke import ArgValidator, Outcome, invoke
from core.runtime.policy import agent_policy
from core.runtime.sandbox import PolicyViolation, load_tool


@dataclass
class CompiledTool:
    spec: ToolSpec
    fn: Callable[..., Any]
    validate: ArgValidator

    def schema(self) -> dict[str, Any]:
        """The tool as an OpenAI/litellm function definition."""
        return {"type": "function", "function": {"name": self.spec.name, "description": self.spec.description,
                                                 "parameters": self.spec.parameters}}


class DomainRuntime:
    """Everything environments of one domain share: compiled tools and the seed snapshot."""

    def __init__(self, domain: Domain, call_seconds: float = 2.0, snapshot_budget: int = 256 * 1024 * 1024):
        self.domain = domain
        self.schema = domain.domain
        self.call_seconds = call_seconds
        self.tools: dict[str, CompiledTool] = {}
        self.refused: dict[str, str] = {}  # stored tools the sandbox does not load (edited or tampered)
        for rec in domain.tools:
            if rec.status == "passed":
                try:
                    fn = load_tool(rec.implementation.source, rec.spec.name)
                except PolicyViolation as e:
                    self.refused[rec.spec.name] = "; ".join(e.violations)
                    continue
                self.tools[rec.spec.name] = CompiledTool(rec.spec, fn, ArgValidator(rec.spec.parameters))
        self.policy = agent_policy(self.schema, [t.spec for t in self.tools.values()])
        self.intents = {n: t.spec.intent for n, t in self.tools.items() if t.spec.intent}  # tool -> intent phrase
        db = DomainDB(self.schema)
        db.load(domain.rows)
        self.seed_snapshot = db.snapshot()
        db.close()
        self._snapshots: dict[str, bytes] = {}
        self._schemas: list[dict[str, Any]] | None = None
        self._cached = 0
        self.snapshot_budget = snapshot_budget

    @property
    def name(self) -> str:
        return self.schema.name

    def tool_schemas(self) -> list[dict[str, Any]]:
        """Every verified tool as a function definition (built once; treat as read-only)."""
        if self._schemas is None:
            self._schemas = [t.schema() for t in self.tools.values()]
        return self._schemas

    def build_db(self, delta: StateDelta) -> DomainDB:
        db = DomainDB.from_snapshot(self.schema, self.seed_snapshot)
        apply_delta(db, delta)
        return db

    def initial_snapshot(self, task: Task) -> bytes:
        """The task's initial database, serialized; cached up to ``snapshot_budget`` bytes in all."""
        snap = self._snapshots.get(task.state_key)
        if snap is None:
            db = self.build_db(task.initial)
            snap = self._snapshots[task.state_key] = db.snapshot()
            db.close()
            self._cached += len(snap)
            while self._cached > self.snapshot_budget and len(self._snapshots) > 1:
                self._cached -= len(self._snapshots.pop(next(iter(self._snapshots))))
        return snap

    def call(self, db: DomainDB, ctx: ToolContext, name: str, args: Any, tooldb: ToolDB | None = None) -> Outcome:
        tool = self.tools.get(name)
        if tool is None:
            return Outcome(False, error={"kind": "unknown_tool",
                                         "message": f"no tool named {name!r}; see the tool list"})
        return invoke(tool.fn, tool.validate, db, ctx, args, self.call_seconds, tooldb)


def apply_delta(db: DomainDB, delta: StateDelta) -> None:
    for table, keys in delta.delete.items():
        for k in keys:
            db.delete(table, k)
    for table, rows in delta.upsert.items():
        ti = db.tables[table]
        cols = ti.cols
        db.conn.executemany(
            f'INSERT OR REPLACE INTO "{table}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
            f'VALUES ({", ".join("?" for _ in cols)})', [[r.get(c) for c in cols] for r in rows])
        # the seed snapshot's counters are right; only ids planted by the delta can pass them
        top = max((int(t) for r in rows if (t := str(r.get(ti.pk)).rsplit("-", 1)[-1]).isdigit()), default=0)
        db.conn.execute("UPDATE _counters SET n = max(n, ?) WHERE tbl = ?", (top, table))
    db.mark()


def delta_between(schema: Any, before: dict[str, list[dict]], after: dict[str, list[dict]]) -> StateDelta:
    d = StateDelta()
    for t in schema.tables:
        pk = t.primary_key
        b = {r[pk]: r for r in before.get(t.name, [])}
        a = {r[pk]: r for r in after.get(t.name, [])}
        ups = [a[k] for k in sorted(a) if b.get(k) != a[k]]
        dels = sorted(k for k in b if k not in a)
        if ups:
            d.upsert[t.name] = ups
        if dels:
            d.delete[t.name] = dels
    return d


MAX_ARGUMENTS = 1_000_000  # characters of a JSON arguments string


def _invalid(message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": "invalid_argument", "message": message}}


class Environment:
    """One task's environment. Not thread-safe; create one per worker (they are cheap)."""

    def __init__(self, runtime: DomainRuntime, task: Task | None = None):
        self.runtime = runtime
        self.schema = runtime.schema
        self.ctx = ToolContext(self.schema.clock)
        self.db = DomainDB(self.schema, create=False)
        self.tooldb = ToolDB(self.db)
        self.task: Task | None = None
        self._loaded: str | None = None
        self.calls: list[dict[str, Any]] = []
        self._user: ScriptedUser | None = None
        if task is not None:
            self.reset(task)

    # ---------------------------------------------------------------- gym-style API

    def reset(self, task: Task | None = None) -> dict[str, Any]:
        task = task or self.task
        if task is None:
            raise ValueError("reset() needs a task the first time")
        conn = self.db.conn
        if self._loaded == task.state_key:
            conn.execute("ROLLBACK")
        else:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.deserialize(self.runtime.initial_snapshot(task))
            self._loaded = task.state_key
        conn.execute("BEGIN")
        self.db.before = {}
        self.task = task
        self.calls = []
        self._user = None  # a new scripted user for this episode, made on the first reply()
        return {"policy": self.runtime.policy, "tools": self.runtime.tool_schemas(),
                "user": task.scenario.instruction}

    def step(self, call: dict[str, Any]) -> dict[str, Any]:
        """Run one tool call ``{"name": ..., "arguments": {...} | "json"}``; returns ``{"ok", "result" | "error"}``.

        Never raises: whatever the agent sends comes back as a structured error, recorded in ``calls``."""
        name = call.get("name") if isinstance(call, dict) else None
        args = call.get("arguments", {}) if isinstance(call, dict) else None
        try:
            if isinstance(args, str):
                if len(args) > MAX_ARGUMENTS:
                    out = _invalid(f"arguments are longer than {MAX_ARGUMENTS} characters")
                    self.calls.append({"name": name, "arguments": args[:200], **out})
                    return out
                try:
                    args = json.loads(args) if args.strip() else {}
                except json.JSONDecodeError as e:
                    out = _invalid(f"arguments are not valid JSON: {e.msg}")
                    self.calls.append({"name": name, "arguments": args, **out})
                    return out
                except (ValueError, RecursionError) as e:  # an integer of 4,300+ digits; nesting too deep
                    why = "nested too deeply" if isinstance(e, RecursionError) else "holding a number too large"
                    out = _invalid(f"arguments are not valid JSON: {why}")
                    self.calls.append({"name": name, "arguments": args[:200], **out})
                    return out
            if not isinstance(name, str):
                out = {"ok": False, "error": {"kind": "invalid_call", "message": "a tool call needs a 'name'"}}
            else:
                out = self.runtime.call(self.db, self.ctx, name, args, self.tooldb).to_dict()
        except Exception as e:  # defence in depth: the contract is that step does not raise
            out = {"ok": False, "error": {"kind": "internal", "message": f"the call failed: {type(e).__name__}"}}
        self.calls.append({"name": name, "arguments": args, **out})
        return out

    def reply(self, text: str) -> dict[str, Any]:
        """Say ``text`` to the task's scripted user (core/agents/user.py); returns ``{"user": its reply, "done"}``.

        ``done`` is true once the reply holds ``STOP``: the user has ended the conversation (later
        replies are ``STOP`` alone). The user is made afresh by each ``reset()``. Keep the
        conversation in your messages for ``evaluate``: the reward reads the assistant's."""
        if self.task is None:
            raise ValueError("reply() before reset()")
        if self._user is None:
            self._user = ScriptedUser(self.runtime.intents)
            self._user.start(self.task)
        said = self._user.reply(text)
        return {"user": said, "done": STOP in said}

    def evaluate(self, messages: Sequence[dict[str, Any]]) -> Reward:
        if self.task is None:
            raise ValueError("evaluate() before reset()")
        gt = self.task.ground_truth
        goals = goal_intents(self.task, self.runtime.intents)
        return evaluate(self.schema, self.db, gt.expected, gt.communicate, list(messages), gt.outcome, goals)

    # ---------------------------------------------------------------- inspection

    def state_hash(self) -> str:
        return self.db.state_hash()

    def diff(self) -> dict[str, Any]:
        """Rows changed in this episode: table -> inserted / deleted / updated (old -> new)."""
        before, after = {}, {}
        for table, pre in self.db.before.items():
            before[table] = [r for r in pre.values() if r is not None]
            after[table] = [r for k in pre if (r := self.db.get(table, k)) is not None]
        return diff_states(before, after, self.schema)

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- async

    async def astep(self, call: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.step, call)


class EnvBatch:
    """Many environments stepped together (vectorized, gym-style), sync or async."""

    def __init__(self, envs: Sequence[Environment]):
        self.envs = list(envs)

    def reset(self, tasks: Sequence[Task] | None = None) -> list[dict[str, Any]]:
        return [e.reset(t) for e, t in zip(self.envs, tasks or [None] * len(self.envs), strict=True)]

    def step(self, calls: Sequence[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
        return [e.step(c) if c is not None else None for e, c in zip(self.envs, calls, strict=True)]

    def evaluate(self, messages: Sequence[Sequence[dict[str, Any]]]) -> list[Reward]:
        return [e.evaluate(m) for e, m in zip(self.envs, messages, strict=True)]

    async def astep(self, calls: Sequence[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
        async def one(e: Environment, c: dict | None) -> dict | None:
            return None if c is None else await e.astep(c)

        return list(await asyncio.gather(*(one(e, c) for e, c in zip(self.envs, calls, strict=True))))
