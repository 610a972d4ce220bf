"""The built-in agents and the episode loop (core.agents), on a handful of bike_rental tasks.

The oracle is the check that a task is solvable; the random and guesser agents are the floors that
a sound reward keeps at zero (README, `scaleenv eval --agent`)."""

from __future__ import annotations

import pytest

from core.agents import GuesserAgent, OracleAgent, RandomAgent, make_agent, run_episode
from core.env import DomainRuntime, Environment

N_TASKS = 8


@pytest.fixture(scope="module")
def runtime(bike_domain):
    return DomainRuntime(bike_domain)


@pytest.fixture(scope="module")
def tasks(bike_domain, runtime):
    from core.tasks import TaskGenerator

    tasks, _ = TaskGenerator(bike_domain, runtime, seed=0).generate(N_TASKS)
    assert len(tasks) == N_TASKS, "test setup: bike_rental should give this many tasks"
    return tasks


@pytest.fixture
def env(runtime):
    e = Environment(runtime)
    yield e
    e.close()


def test_the_handful_has_refusals_and_goals_that_write(tasks):
    """Setup check, so the agent tests below cover both kinds of task."""
    assert any(t.is_refusal for t in tasks)
    assert any(not t.is_refusal and t.ground_truth.diff for t in tasks)


def test_the_oracle_scores_one_on_every_task(env, tasks):
    rewards = {t.id: run_episode(env, t, make_agent("oracle")).reward for t in tasks}
    assert {i: (r.reward, r.reasons) for i, r in rewards.items()} == {t.id: (1.0, []) for t in tasks}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_random_agent_scores_zero(env, tasks, seed):
    scores = [run_episode(env, t, make_agent("random", seed=seed * 1000 + i)).reward.reward
              for i, t in enumerate(tasks)]
    assert scores == [0.0] * len(tasks)


def test_the_random_agent_does_call_tools(env, tasks):
    """A floor that never acts would prove nothing: the random agent makes calls with real tool names."""
    names = set(env.runtime.tools)
    ep = run_episode(env, tasks[0], make_agent("random", seed=3))
    calls = [m["tool_call"] for m in ep.messages if "tool_call" in m]
    assert 1 <= len(calls) <= 6
    assert {c["name"] for c in calls} <= names
    assert env.calls and [c["name"] for c in env.calls] == [c["name"] for c in calls]


def test_the_random_agent_is_reproducible_by_seed(env, tasks):
    a = run_episode(env, tasks[1], RandomAgent(seed=5)).messages
    b = run_episode(env, tasks[1], RandomAgent(seed=5)).messages
    assert a == b


def test_the_guesser_scores_zero_and_calls_no_tool(env, tasks, runtime):
    for t in tasks:
        ep = run_episode(env, t, make_agent("guesser", schema=runtime.schema))
        assert ep.reward.reward == 0.0, t.id
        assert env.calls == []
        assert [m["role"] for m in ep.messages] == ["user", "assistant"]


def test_the_guesser_names_every_enum_value_and_yes_no(runtime):
    """It is the strongest no-look-up guess: every value the schema lets an agent name."""
    g = GuesserAgent(runtime.schema)
    enums = {v for t in runtime.schema.tables for c in t.columns for v in c.values}
    assert enums, "test setup: bike_rental has enum columns"
    said = g.act(None)["say"]
    assert all(v in said for v in enums)
    assert "yes" in said and "no" in said


def test_run_episode_records_each_call_and_its_result(env, tasks):
    task = max(tasks, key=lambda t: len(t.chain))
    ep = run_episode(env, task, OracleAgent())
    assert ep.task_id == task.id
    assert ep.messages[0] == {"role": "user", "content": task.scenario.instruction}
    calls = ep.messages[1:-1:2]
    results = ep.messages[2:-1:2]
    assert [c["tool_call"] for c in calls] == [{"name": s.tool, "arguments": s.args} for s in task.chain]
    assert all(c["role"] == "assistant" and c["content"] is None for c in calls)
    assert [r["name"] for r in results] == [s.tool for s in task.chain]
    assert [r["content"] for r in results] == [{k: v for k, v in c.items() if k not in ("name", "arguments")}
                                               for c in env.calls]
    # a refusal's goal is blocked by a precondition; every other call succeeds
    assert [r["content"]["ok"] for r in results] == [s.expect == "ok" for s in task.chain]
    assert ep.messages[-1]["role"] == "assistant" and isinstance(ep.messages[-1]["content"], str)
    assert len(ep.messages) == 2 * len(task.chain) + 2


def test_run_episode_starts_each_task_from_its_initial_state(env, tasks):
    """The environment is reused across episodes; a previous episode's writes must not leak."""
    writer = next(t for t in tasks if not t.is_refusal and t.ground_truth.diff)
    run_episode(env, writer, OracleAgent())
    after_first = env.state_hash()
    assert run_episode(env, writer, OracleAgent()).reward.reward == 1.0
    assert env.state_hash() == after_first == writer.ground_truth.final_hash


class Chatterbox:
    """Calls a read-only tool forever and never answers."""

    def __init__(self, tool: str, args: dict):
        self.call = {"name": tool, "arguments": args}

    def start(self, task, observation):
        pass

    def act(self, last):
        return {"tool": self.call}


def test_run_episode_stops_after_max_steps_and_still_scores(env, tasks):
    task = next(t for t in tasks if t.ground_truth.diff and t.chain[0].role == "lookup")
    lookup = task.chain[0]
    ep = run_episode(env, task, Chatterbox(lookup.tool, lookup.args), max_steps=4)
    assert len(env.calls) == 4
    assert [m["role"] for m in ep.messages] == ["user"] + ["assistant", "tool"] * 4
    assert ep.reward is not None and ep.reward.reward == 0.0


def test_an_unknown_agent_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown agent 'smart': use oracle, random, guesser"):
        make_agent("smart")


def test_the_guesser_without_a_schema_says_it_needs_one():
    with pytest.raises(ValueError, match=r"schema"):
        make_agent("guesser")
