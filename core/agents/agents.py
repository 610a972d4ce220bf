"""Agents for checking tasks, and the loop that runs an episode.

* :class:`OracleAgent` replays the ground-truth chain and tells the user the required values;
  talking to a user, it first asks for the known facts the first message does not state.
* :class:`RandomAgent` calls random tools with arguments drawn from what it has seen, then
  says a couple of values it saw: a floor that a sound reward must keep near zero.
* :class:`GuesserAgent` calls nothing and names every enum value: the reward-gaming floor.

:func:`run_episode` runs one episode, with a user (core/agents/user.py: each "say" goes to the user and
its reply comes back) or without one (the first "say" ends the episode).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.agents.user import STOP, User, fact_noun
from core.data.taskmodel import Task
from core.evaluation.reward import Reward, value_mentioned
from core.runtime.env import Environment
from core.tasks.generator import oracle_messages


class Agent(Protocol):
    def start(self, task: Task, observation: dict[str, Any]) -> None:
        """``observation`` is ``Environment.reset``'s (policy, tools, the user's first message as
        ``"user"``), plus ``"interactive"``: true when a user will reply to what the agent says."""
        ...

    def act(self, last: dict[str, Any] | None) -> dict[str, Any]:
        """``{"tool": {"name", "arguments"}}`` to call a tool, ``{"say": text}`` to talk to the user
        (without a user, to answer and finish), or ``{"stop": True}`` to end the episode.

        ``last`` is None at first, then the tool's result (``{"ok", "result" | "error"}``) after a
        call, or ``{"user": reply}`` after a "say"."""
        ...


def _noun_list(keys: list[str]) -> str:
    nouns = list(dict.fromkeys(fact_noun(k) for k in keys))
    said = [("your " if n.split()[-1] in ("email", "phone") else "the ") + n for n in nouns]
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


class OracleAgent:
    """Replays the ground-truth chain, then reports (``core.tasks.generator.oracle_messages``).

    With a user (``observation["interactive"]``) it first asks, in one message, for every known
    fact whose value the first message does not state, and goes on only if the reply tells each
    of them; otherwise it says what it is missing and stops (the episode then scores 0). Without a
    user it never asks."""

    def start(self, task: Task, observation: dict[str, Any]) -> None:
        self.task, self.i = task, 0
        first = observation.get("user", task.scenario.instruction)
        self.need = ({k: v for k, v in task.scenario.known.items() if not value_mentioned(v, first)}
                     if observation.get("interactive") else {})
        self.asked = self.reported = False

    def act(self, last: dict[str, Any] | None) -> dict[str, Any]:
        if self.need and not self.asked:
            self.asked = True
            return {"say": f"Could you give me {_noun_list(list(self.need))}?"}
        if self.need:  # the user's answer to the question
            told = str((last or {}).get("user", ""))
            missing = [k for k, v in self.need.items() if not value_mentioned(v, told)]
            self.need = {}
            if missing:
                self.reported = True
                return {"say": f"Without {_noun_list(missing)} I cannot look up your request."}
        if self.i < len(self.task.chain):
            step = self.task.chain[self.i]
            self.i += 1
            return {"tool": {"name": step.tool, "arguments": step.args}}
        if not self.reported:
            self.reported = True
            return {"say": oracle_messages(self.task)[-1]["content"]}
        return {"stop": True}


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
    # why it ended: "said" (no user), "user" (the user's STOP), "agent" ({"stop": True}),
    # "max_steps", "max_turns"
    ended: str = ""


def run_episode(env: Environment, task: Task, agent: Agent, user: User | None = None, max_steps: int = 30,
                max_turns: int = 10) -> Episode:
    """Run ``agent`` on ``task`` and score the messages with ``env.evaluate``.

    Without a user the first "say" ends the episode. With one, the user's ``start(task)`` is the
    first message, each "say" goes to ``user.reply`` and the reply comes back to the agent as
    ``{"user": reply}``; the episode ends when a reply contains ``STOP``, when the agent returns
    ``{"stop": True}``, after ``max_turns`` replies, or after ``max_steps`` actions (calls and
    messages). Messages are recorded in order: user, assistant (text, or ``tool_call``), tool."""
    obs = env.reset(task)
    first = user.start(task) if user is not None else obs["user"]
    ep = Episode(task.id, [{"role": "user", "content": first}])
    agent.start(task, {**obs, "user": first, "interactive": user is not None})
    last = None
    turns = 0
    ep.ended = "max_steps"
    for _ in range(max_steps):
        action = agent.act(last)
        if action.get("stop"):
            ep.ended = "agent"
            break
        if "say" in action:
            text = action["say"]
            ep.messages.append({"role": "assistant", "content": text})
            if user is None:
                ep.ended = "said"
                break
            reply = user.reply(text)
            ep.messages.append({"role": "user", "content": reply})
            turns += 1
            if STOP in reply:
                ep.ended = "user"
                break
            if turns >= max_turns:
                ep.ended = "max_turns"
                break
            last = {"user": reply}
            continue
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
