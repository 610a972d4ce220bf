"""The built-in agents and the episode loop (core.agents.agents), on a handful of bike_rental tasks.

The oracle is the check that a task is solvable; the random and guesser agents are the floors that
a sound reward keeps at zero (README, `scaleenv eval --agent`). Each is run without a user and
through the scripted user (core/agents/user.py), also on tasks whose first message withholds facts."""

from __future__ import annotations

import pytest

from core.agents.agents import GuesserAgent, OracleAgent, RandomAgent, make_agent, run_episode
from core.agents.user import STOP, THANKS, ScriptedUser, goal_intents
from core.evaluation.claims import intent_verb, past_forms
from core.evaluation.reward import value_mentioned
from core.runtime.env import DomainRuntime, Environment
from core.tasks.generator import oracle_messages

N_TASKS = 8


@pytest.fixture(scope="module")
def runtime(bike_domain):
    return DomainRuntime(bike_domain)


@pytest.fixture(scope="module")
def tasks(bike_domain, runtime):
    from core.tasks.generator import TaskGenerator

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


# ---------------------------------------------------------------------- through the scripted user

def withheld(task, keys=("email",)):
    """The task with these known facts left out of the first message: the user tells them when asked."""
    t = task.model_copy(deep=True)
    text = t.scenario.instruction
    for k in keys:
        v = str(t.scenario.known[k])
        text = text.replace(f" (email {v})", "").replace(v, f"my {k.replace('_', ' ')}")
    t.scenario.instruction = text
    assert not any(value_mentioned(t.scenario.known[k], text) for k in keys), "test setup"
    return t


def quiet(task):
    """Every known fact left out: the first message says only that the user needs help."""
    t = task.model_copy(deep=True)
    t.scenario.instruction = "Hi, I need some help with a request."
    t.scenario.reason = "I need some help with a request."
    return t


def scripted(env):
    return ScriptedUser(env.runtime.intents)


def test_the_oracle_passes_every_task_through_the_scripted_user(env, tasks):
    eps = {t.id: run_episode(env, t, OracleAgent(), user=scripted(env)) for t in tasks}
    assert {i: (e.reward.reward, e.reward.reasons, e.ended) for i, e in eps.items()} == \
        {t.id: (1.0, [], "user") for t in tasks}
    for t in tasks:
        msgs = eps[t.id].messages
        assert msgs[-1] == {"role": "user", "content": THANKS}
        assert msgs[-2] == {"role": "assistant", "content": oracle_messages(t)[-1]["content"]}


def test_the_oracle_asks_for_a_withheld_email_and_passes(env, tasks):
    with_email = [t for t in tasks if "email" in t.scenario.known]
    assert len(with_email) >= 3, "test setup: tasks with a persona"
    for t in map(withheld, with_email):
        ep = run_episode(env, t, OracleAgent(), user=scripted(env))
        assert (ep.reward.reward, ep.reward.reasons) == (1.0, []), t.id
        ask, answer = ep.messages[1], ep.messages[2]
        assert ask["role"] == "assistant" and "your email" in ask["content"] and ask["content"].endswith("?")
        assert answer["role"] == "user" and t.scenario.known["email"] in answer["content"]
        assert STOP not in answer["content"]


def test_the_oracle_passes_with_every_fact_withheld(env, tasks):
    for t in map(quiet, tasks):
        ep = run_episode(env, t, OracleAgent(), user=scripted(env))
        assert (ep.reward.reward, ep.reward.reasons) == (1.0, []), t.id
        told = ep.messages[2]["content"]
        assert all(value_mentioned(v, told) for v in t.scenario.known.values()), (t.id, told)


def test_the_oracle_stops_when_the_user_does_not_tell_what_it_asked(env, tasks):
    """The oracle's pass through a user means the facts could be had from it: a user that never
    tells gives 0 on a task that withholds one."""

    class Mute(ScriptedUser):
        def reply(self, agent_text):
            return "Sorry, I don't know that." if agent_text.endswith("?") else super().reply(agent_text)

    t = withheld(next(t for t in tasks if "email" in t.scenario.known))
    ep = run_episode(env, t, OracleAgent(), user=Mute(env.runtime.intents))
    assert ep.reward.reward == 0.0
    said = ep.messages[3]["content"]
    assert env.calls == [] and said.startswith("Without ") and "your email" in said


def test_without_a_user_the_oracle_never_asks(env, tasks):
    t = withheld(next(t for t in tasks if "email" in t.scenario.known))
    ep = run_episode(env, t, OracleAgent())
    assert ep.ended == "said" and [m["role"] for m in ep.messages].count("user") == 1
    assert ep.messages[1]["role"] == "assistant" and ep.messages[1]["content"] is None  # a tool call first


@pytest.mark.parametrize("seed", [0, 1])
def test_the_random_agent_scores_zero_through_the_scripted_user(env, tasks, seed):
    for i, t in enumerate(tasks):
        for task in (t, quiet(t)):
            ep = run_episode(env, task, make_agent("random", seed=seed * 1000 + i), user=scripted(env))
            assert ep.reward.reward == 0.0, task.id
            assert ep.ended in ("user", "max_steps", "max_turns")


def test_the_guesser_scores_zero_through_the_scripted_user(env, tasks, runtime):
    for t in tasks:
        ep = run_episode(env, t, make_agent("guesser", schema=runtime.schema), user=scripted(env))
        assert ep.reward.reward == 0.0, t.id
        assert env.calls == [] and ep.ended == "user"
        assert [m["role"] for m in ep.messages][:3] == ["user", "assistant", "user"]


class Replayer:
    """Replays the chain, then says ``text``."""

    def __init__(self, text):
        self.text = text

    def start(self, task, observation):
        self.steps = list(task.chain)

    def act(self, last):
        if self.steps:
            s = self.steps.pop(0)
            return {"tool": {"name": s.tool, "arguments": s.args}}
        return {"say": self.text}


def test_a_false_success_claim_on_a_refusal_scores_zero_through_the_scripted_user(env, tasks, runtime):
    task = next(t for t in tasks if t.is_refusal)
    verb, particle = intent_verb(goal_intents(task, runtime.intents)[-1])
    values = "; ".join(f"{v.label.split('.')[-1]}: {v.value}" for v in task.ground_truth.communicate)
    claim = f"Your rental is booked and I {past_forms(verb)[0]} it{' ' + particle if particle else ''}. {values}"
    ep = run_episode(env, task, Replayer(claim), user=scripted(env))
    assert ep.reward.reward == 0.0 and not ep.reward.claims_ok
    assert ep.reward.state_ok and ep.reward.communicated_ok  # only the claim is wrong
    assert ep.messages[-1]["role"] == "user" and STOP in ep.messages[-1]["content"]
    honest = run_episode(env, task, Replayer(oracle_messages(task)[-1]["content"]), user=scripted(env))
    assert honest.reward.reward == 1.0


def test_questions_to_the_user_do_not_break_the_claim_rules(env, tasks):
    """What the agent asks is in its messages, which the claim rules read: a plain question must
    not count as a refusal, a claim or a goal reported not done."""
    questions = ["What is your email?", "Could you give me your email and the serial?",
                 "Shall I go ahead?", "Do you want me to proceed?"]
    for t in tasks:
        env.reset(t)
        for s in t.chain:
            env.step({"name": s.tool, "arguments": s.args})
        msgs = oracle_messages(t)
        asked = [msgs[0], *({"role": "assistant", "content": q} for q in questions), msgs[1]]
        assert env.evaluate(asked).reward == 1.0, t.id
        if t.is_refusal:  # questions alone say nothing of the outcome
            alone = [msgs[0], *({"role": "assistant", "content": q} for q in questions)]
            assert not env.evaluate(alone).claims_ok


def test_the_reward_reads_the_assistant_not_the_user(env, tasks):
    t = next(t for t in tasks if not t.is_refusal)
    env.reset(t)
    for s in t.chain:
        env.step({"name": s.tool, "arguments": s.args})
    report = oracle_messages(t)[-1]["content"]
    assert env.evaluate([{"role": "user", "content": report}, {"role": "assistant", "content": "Done."}]).reward == 0.0
    assert env.evaluate([{"role": "user", "content": "hi"}, {"role": "assistant", "content": report}]).reward == 1.0


class Talker:
    """Says the same thing forever."""

    def start(self, task, observation):
        self.observation = observation

    def act(self, last):
        return {"say": "Shall I go ahead?"}


def test_run_episode_with_a_user_records_the_replies_and_stops_at_max_turns(env, tasks):
    agent = Talker()
    ep = run_episode(env, tasks[0], agent, user=scripted(env), max_turns=3)
    assert agent.observation["interactive"] is True and agent.observation["user"] == tasks[0].scenario.instruction
    assert [m["role"] for m in ep.messages] == ["user"] + ["assistant", "user"] * 3
    assert ep.ended == "max_turns" and ep.reward.reward == 0.0
    assert all(m["content"] == "Yes, please go ahead." for m in ep.messages[2::2])


def test_run_episode_ends_when_the_agent_stops(env, tasks):
    class Quitter:
        def start(self, task, observation):
            pass

        def act(self, last):
            return {"stop": True}

    ep = run_episode(env, tasks[0], Quitter(), user=scripted(env))
    assert ep.ended == "agent" and ep.messages == [{"role": "user", "content": tasks[0].scenario.instruction}]


def test_without_a_user_the_agent_is_told_so(env, tasks):
    agent = Talker()
    ep = run_episode(env, tasks[0], agent)
    assert agent.observation["interactive"] is False
    assert ep.ended == "said" and len(ep.messages) == 2
