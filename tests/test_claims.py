"""Claims through ``Environment.evaluate`` on real bike_rental tasks (docs/tasks.md, "Claims").

The chain is replayed, so the state and the values are right; only what the agent says about the
outcome changes. The phrasings are built from each goal's intent (its verb and object), the way
an agent would word them: "I could not rent the bike", "I rented the bike".
"""

from __future__ import annotations

import pytest

from core.evaluation.claims import intent_object, intent_verb, past_forms
from core.runtime.env import DomainRuntime, Environment
from core.tasks.generator import TaskGenerator, oracle_messages


@pytest.fixture(scope="module")
def generated(bike_domain):
    runtime = DomainRuntime(bike_domain)
    tasks, _ = TaskGenerator(bike_domain, runtime, seed=0).generate(40)
    return runtime, tasks


def words(runtime, step) -> tuple[str, str, str]:
    """(verb, past form, object) of a goal step's intent: ("rent", "rented", "bike")."""
    intent = runtime.tools[step.tool].spec.intent
    verb, particle = intent_verb(intent)
    return f"{verb} {particle}".strip(), f"{past_forms(verb)[0]} {particle}".strip(), intent_object(intent)


def values(task) -> str:
    """The oracle's values without its head ("Done." / "I could not do that.")."""
    return oracle_messages(task)[-1]["content"].split(". ", 1)[1]


def score(env, task, said: str):
    env.reset(task)
    for s in task.chain:
        env.step({"name": s.tool, "arguments": s.args})
    return env.evaluate([{"role": "user", "content": task.scenario.instruction},
                         {"role": "assistant", "content": said}])


@pytest.fixture(scope="module")
def refusals(generated):
    runtime, tasks = generated
    out = [t for t in tasks if t.is_refusal]
    assert len(out) >= 3
    return out


@pytest.fixture(scope="module")
def completed(generated):
    return [t for t in generated[1] if not t.is_refusal]


def goals(task):
    return [s for s in task.chain if s.role == "goal"]


def test_the_oracle_words_score_one_and_the_other_outcome_zero(generated):
    runtime, tasks = generated
    env = Environment(runtime)
    for t in tasks:
        r = score(env, t, oracle_messages(t)[-1]["content"])
        assert (r.reward, r.claims_ok, r.reasons) == (1.0, True, []), t.id
        other = ("Done. " if t.is_refusal else "I could not do that. ") + values(t)
        r = score(env, t, other)
        assert (r.reward, r.state_ok, r.communicated_ok, r.claims_ok) == (0.0, True, True, False), (t.id, r.reasons)


def test_a_wrong_claim_on_a_refusal_scores_zero(generated, refusals):
    runtime, _ = generated
    env = Environment(runtime)
    for t in refusals:
        _, done, noun = words(runtime, goals(t)[-1])
        intent = runtime.tools[goals(t)[-1].tool].spec.intent
        r = score(env, t, f"I {done} the {noun}. Some of it could not be done: {values(t)}")
        assert (r.reward, r.state_ok, r.communicated_ok, r.claims_ok) == (0.0, True, True, False), t.id
        assert r.reasons == [f"the agent claimed the refused goal ({intent}) was done: 'i {done} the {noun}'"]
        r = score(env, t, f"Done, it went through: I {done} the {noun}. {values(t)}")
        assert r.reward == 0.0 and len(r.reasons) == 2, (t.id, r.reasons)
        assert r.reasons[0] == f"the agent did not say that the request could not be done ({intent})"


def test_a_refusal_said_in_other_words_scores_one(generated, refusals):
    runtime, _ = generated
    env = Environment(runtime)
    for t in refusals:
        verb, done, noun = words(runtime, goals(t)[-1])
        for said in (f"I'm sorry, but I couldn't {verb} the {noun}. {values(t)}",
                     f"Unfortunately the {noun} could not be {done}: {values(t)}",
                     f"The {noun} was not {done}. {values(t)}"):
            r = score(env, t, said)
            assert (r.reward, r.reasons) == (1.0, []), (t.id, said)


def test_a_multi_goal_refusal_may_report_the_earlier_goal_done(generated, refusals):
    runtime, _ = generated
    env = Environment(runtime)
    several = [t for t in refusals if len(goals(t)) > 1]
    assert several
    for t in several:
        first, last = words(runtime, goals(t)[0]), words(runtime, goals(t)[-1])
        said = f"I {first[1]} the {first[2]}, but I could not {last[0]} the {last[2]}. {values(t)}"
        assert score(env, t, said).reward == 1.0, (t.id, said)
        if first[0] != last[0]:
            wrong = f"I could not {first[0]} the {first[2]}. I could not {last[0]} the {last[2]}. {values(t)}"
            r = score(env, t, wrong)
            assert (r.reward, r.claims_ok) == (0.0, False), (t.id, wrong)


def test_a_completed_goal_reported_as_not_done_scores_zero(generated, completed):
    runtime, _ = generated
    env = Environment(runtime)
    for t in completed:
        verb, _, noun = words(runtime, goals(t)[-1])
        r = score(env, t, f"I could not {verb} the {noun}. {values(t)}")
        assert (r.reward, r.state_ok, r.communicated_ok, r.claims_ok) == (0.0, True, True, False), t.id
        assert r.reasons[0].startswith("the agent reported a goal that was done ("), r.reasons


def test_an_intermediate_couldnt_find_remark_scores_one(generated, completed):
    runtime, _ = generated
    env = Environment(runtime)
    for t in completed:
        _, done, noun = words(runtime, goals(t)[-1])
        said = (f"I couldn't find a rental under that email, so I used your id and {done} the {noun}. "
                f"{values(t)}")
        assert score(env, t, said).reward == 1.0, (t.id, said)


def test_right_words_do_not_excuse_a_wrong_state(generated, refusals):
    runtime, _ = generated
    env = Environment(runtime)
    writing = [t for t in refusals if t.ground_truth.expected.updated or t.ground_truth.expected.inserted]
    assert writing  # a refusal whose earlier goal writes
    for t in writing:
        env.reset(t)  # nothing done, then the oracle's words and values
        r = env.evaluate(oracle_messages(t))
        assert (r.reward, r.state_ok, r.communicated_ok, r.claims_ok) == (0.0, False, True, True), t.id


@pytest.mark.parametrize("verb,past", [("study", "studied"), ("cry", "cried"), ("play", "played"),
                                       ("occur", "occurred"), ("pay", "paid"), ("stop", "stopped")])
def test_past_forms_follow_english_spelling(verb, past):
    assert past in past_forms(verb)


@pytest.mark.parametrize("intent,verb", [("pay", ("pay", "")), ("check in", ("check", "in")),
                                         ("check in {rental_id}", ("check", "in")), ("pay off {x}", ("pay", "off"))])
def test_the_goal_verb_takes_its_particle(intent, verb):
    assert intent_verb(intent) == verb


def test_a_question_about_the_refused_goal_is_no_claim():
    from core.evaluation.claims import check_claims, claim_rules

    rules = claim_rules("refused", ("book a pickup for parcel {parcel_id}",), ())
    assert check_claims(rules, "I could not book the pickup. Was it booked before today?") == []
    assert check_claims(rules, "I could not book the pickup. It was booked before today.") == [
        "the agent claimed the refused goal (book a pickup for parcel {parcel_id}) was done: "
        "'it was booked before today'"]


# ---------------------------------------------------------------------- claims are judged on the report


def episode(env, task, before: str, after: str) -> list[dict]:
    """The agent says ``before``, replays the chain as tool calls, then reports ``after``."""
    env.reset(task)
    msgs = [{"role": "user", "content": task.scenario.instruction}, {"role": "assistant", "content": before}]
    for s in task.chain:
        call = {"name": s.tool, "arguments": s.args}
        msgs.append({"role": "assistant", "content": None, "tool_call": call})
        msgs.append({"role": "tool", "name": s.tool, "content": env.step(call)})
    msgs.append({"role": "assistant", "content": after})
    return msgs


def test_a_remark_before_acting_is_no_claim_about_the_outcome(generated, completed):
    """"I can't rent you a bike without your email" before renting it is not "the rental failed"."""
    runtime, _ = generated
    env = Environment(runtime)
    for task in completed[:8]:
        verb, _, obj = words(runtime, goals(task)[0])
        before = f"I can not {verb} the {obj} without your email. What is your email?"
        assert env.evaluate(episode(env, task, before, "Done. " + values(task))).reward == 1.0, task.id
        # the same words in the report are a claim: the goal was reported as not done
        assert env.evaluate(episode(env, task, "Let me check.", f"I could not {verb} the {obj}. " + values(task))
                            ).reward == 0.0, task.id


def test_a_refusal_must_be_said_in_the_report_not_in_an_earlier_remark(generated, refusals):
    runtime, _ = generated
    env = Environment(runtime)
    for task in refusals:
        assert env.evaluate(episode(env, task, "Let me look.", "I could not do that. " + values(task))).reward == 1.0
        # "could not" said before acting, then a report that does not say it could not be done
        msgs = episode(env, task, "I could not find your account at first; one moment.", "Here: " + values(task))
        assert env.evaluate(msgs).reward == 0.0, task.id
