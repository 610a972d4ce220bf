"""Agents for checking tasks, and the loop that runs an episode.

* :class:`OracleAgent` replays the ground-truth chain and tells the user the required values.
* :class:`RandomAgent` calls random tools with arguments drawn from what it has seen, then
  says a couple of values it saw: a floor that a sound reward must keep near zero.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.env import Environment
from core.reward import Reward
from core.taskmodel import Task
from core.tasks import oracle_messages


class Agent(Protocol):
    def start(self, task: Task, observation: dict[str, Any]) -> None: ...

    def act(self, last: dict[str, Any] | None) -> dict[str, Any]:
        """``{"tool": {"name", "arguments"}}`` to call a tool, or ``{"say": text}`` to answer and finish."""
        ...


class OracleAgent:
    def start(self, task: Task, observation: dict[str, Any]) -> None:
        self.task, self.i = task, 0

    def act(self, last: dict[str, Any] | None) -> dict[str, Any]:
        if self.i < len(self.task.chain):
            step = self.task.chain[self.i]
            self.i += 1
            return {"tool": {"name": step.tool, "arguments": step.args}}
        return {"say": oracle_messages(self.task)[-1]["content"]}


_TOKEN = re.compile(r"[\w.@+-]+")


class RandomAgent:
    def __init__(self, seed: int = 0, max_calls: int = 6):
        self.rng = random.Random(seed)
        self.max_calls = max_calls

    def start(self, task: Task, observation: dict[str, Any]) -> None:
        self.tools = observation["tools"]
        self.seen: list[Any] = [t for t in _TOKEN.findall(observation.get("user", "")) if len(t) > 3]
        self.calls = self.rng.randint(1, self.max_calls)

    def _absorb(self, value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                self._absorb(v)
        elif isinstance(value, list):
            for v in value[:20]:
                self._absorb(v)
        elif value is not None and not isinstance(value, bool):
            self.seen.append(value)

    def _arg(self, schema: dict[str, Any]) -> Any:
        rng = self.rng
        if "enum" in schema:
            return rng.choice(schema["enum"])
        t = schema.get("type")
        if t == "integer":
            return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 20)))
        if t == "number":
            return round(rng.uniform(schema.get("minimum", 0), schema.get("maximum", 100)), 2)
        if t == "boolean":
            return rng.random() < 0.5
        strings = [s for s in self.seen if isinstance(s, str)]
        return rng.choice(strings) if strings and rng.random() < 0.9 else "unknown"

    def act(self, last: dict[str, Any] | None) -> dict[str, Any]:
        if last is not None:
            self._absorb(last.get("result"))
        if self.calls > 0:
            self.calls -= 1
            tool = self.rng.choice(self.tools)["function"]
            props = tool["parameters"].get("properties", {})
            return {"tool": {"name": tool["name"], "arguments": {k: self._arg(s) for k, s in props.items()}}}
        said = self.rng.sample(self.seen, min(2, len(self.seen))) if self.seen else []
        return {"say": "Here is what I found: " + ", ".join(map(str, said))}


class GuesserAgent:
    """Calls nothing and names every value the schema lets it guess (all enum values, yes/no).

    A floor for reward gaming: it must never score, since doing nothing changes no state and
    every task asks for something that has to be looked up."""

    def __init__(self, schema: Any):
        words = sorted({v for t in schema.tables for c in t.columns for v in c.values})
        self.text = "It is one of: " + ", ".join(words) + ". yes / no."

    def start(self, task: Task, observation: dict[str, Any]) -> None:
        pass

    def act(self, last: dict[str, Any] | None) -> dict[str, Any]:
        return {"say": self.text}


@dataclass
class Episode:
    task_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    reward: Reward | None = None


def run_episode(env: Environment, task: Task, agent: Agent, max_steps: int = 30) -> Episode:
    obs = env.reset(task)
    ep = Episode(task.id, [{"role": "user", "content": obs["user"]}])
    agent.start(task, obs)
    last = None
    for _ in range(max_steps):
        action = agent.act(last)
        if "say" in action:
            ep.messages.append({"role": "assistant", "content": action["say"]})
            break
        call = action["tool"]
        ep.messages.append({"role": "assistant", "content": None, "tool_call": call})
        last = env.step(call)
        ep.messages.append({"role": "tool", "name": call.get("name"), "content": last})
    ep.reward = env.evaluate(ep.messages)
    return ep


AGENTS = ("oracle", "random", "guesser")


def make_agent(name: str, seed: int = 0, schema: Any = None) -> Agent:
    if name == "oracle":
        return OracleAgent()
    if name == "random":
        return RandomAgent(seed)
    if name == "guesser":
        if schema is None:
            raise ValueError("the guesser agent needs the domain's schema (make_agent('guesser', schema=...))")
        return GuesserAgent(schema)
    raise ValueError(f"unknown agent {name!r}: use {', '.join(AGENTS)}")
