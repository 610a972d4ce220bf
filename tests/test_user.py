"""The scripted user (core/agents/user.py): its rules on hand-made scenarios, Environment.reply, and
`scaleenv eval --user`. Episodes through it (oracle, random, guesser) are in tests/test_agents.py."""

from __future__ import annotations

import json

import pytest

from core.agents.user import DONT_KNOW, GIVE_UP, GO_AHEAD, STOP, THANKS, ScriptedUser, fact_noun, make_user
from core.data.taskmodel import ChainStep, GroundTruth, Scenario, StateDelta, Task
from core.evaluation.reward import Expected, RequiredValue

INTENTS = {"rent_bike": "rent bike {bike_id}", "find_rider_by_email": "find rider by email"}
FIRST = "Hi, I'm Ann Lee. I would like to rent the bike with serial BK123-AB. Please tell me the balance."
KNOWN = {"email": "ann@x.com", "serial": "BK123-AB", "email_2": "bob@y.com", "due_on": "2026-04-01",
         "recipient_address": "1 Main St"}


def make_task(outcome: str = "completed", known: dict | None = None, instruction: str = FIRST, reason: str = "",
              unknown: tuple[str, ...] = ("the rental id",), asks: tuple[str, ...] = ("balance",),
              values: tuple[tuple[object, str], ...] = ((30.5, "riders.balance"), ("RNT-0061", "rentals.rental_id"))
              ) -> Task:
    """A task whose scenario and ground truth are made by hand (the user reads nothing else)."""
    return Task(id="bike_rental-0-00001", domain="bike_rental",
                chain=[ChainStep(tool="find_rider_by_email", args={"email": "ann@x.com"}, role="lookup"),
                       ChainStep(tool="rent_bike", args={"bike_id": "BK-0001"}, role="goal",
                                 expect="precondition" if outcome == "refused" else "ok")],
                initial=StateDelta(),
                scenario=Scenario(persona="Ann Lee", goal="rent the bike with serial BK123-AB",
                                  known=dict(KNOWN if known is None else known), instruction=instruction,
                                  reason=reason, unknown=list(unknown), asks=list(asks)),
                ground_truth=GroundTruth(final_hash="", expected=Expected(), outcome=outcome,
                                         communicate=[RequiredValue(value=v, label=lab) for v, lab in values]))


def user_for(task: Task) -> ScriptedUser:
    u = ScriptedUser(INTENTS)
    assert u.start(task) == task.scenario.instruction
    return u


# ---------------------------------------------------------------------- 1. facts it is asked for

def test_a_question_for_the_email_gets_the_email_and_nothing_else():
    u = user_for(make_task(known={"email": "ann@x.com", "serial": "BK123-AB"}))
    said = u.reply("Could you give me your email?")
    assert said == "My email is ann@x.com."
    assert "BK123-AB" not in said and STOP not in said


@pytest.mark.parametrize("question", ["What is your e-mail address?", "Please provide your email address.",
                                      "Which emails do you use?", "Can you tell me the EMAIL on the account"])
def test_every_email_is_given_when_the_email_is_asked_for_in_any_usual_words(question):
    u = user_for(make_task())
    said = u.reply(question)
    assert said == "My email is ann@x.com; the other email is bob@y.com."


def test_several_facts_asked_at_once_are_each_told_in_the_scenarios_order():
    u = user_for(make_task())
    said = u.reply("Could you give me the serial number and your email? And when is it due on?")
    assert said == ("My email is ann@x.com; the other email is bob@y.com. The serial is BK123-AB. "
                    "The due on is 2026-04-01.")


def test_the_last_word_of_a_fact_names_it_unless_a_whole_noun_covers_it():
    u = user_for(make_task())
    assert u.reply("What address should it go to?") == "The recipient address is 1 Main St."
    # "email address" names the email; its "address" is no question for the recipient address
    assert "1 Main St" not in u.reply("What is your email address?")
    # short last words are too vague ("due on": on)
    assert u.reply("Which one do you mean?") == DONT_KNOW


def test_a_statement_naming_a_fact_is_not_a_question_for_it():
    """The oracle's report says "status: active" on tasks whose user knows a status: it must end the
    conversation, not get the status back."""
    task = make_task(known={"status": "active", "email": "ann@x.com"})
    u = user_for(task)
    assert u.reply("Done. status: active; balance: 30.5; rental id: RNT-0061") == THANKS


def test_fact_nouns_drop_the_number_and_the_underscores():
    assert [fact_noun(k) for k in ("email", "email_2", "due_on", "section_id_3")] == \
        ["email", "email", "due on", "section id"]


# ---------------------------------------------------------------------- 2. what it does not know

def test_it_says_it_does_not_know_an_unknown_fact_and_asks_the_agent_to_look_it_up():
    u = user_for(make_task())
    assert u.reply("What is your rental id?") == "I don't know the rental id; can you look it up?"
    assert u.reply("Could you give me the rental IDs?") == "I don't know the rental id; can you look it up?"


def test_known_and_unknown_facts_in_one_question_get_both_answers():
    u = user_for(make_task())
    assert u.reply("What are your email and your rental id?") == (
        "My email is ann@x.com; the other email is bob@y.com. I don't know the rental id; can you look it up?")


def test_a_question_about_nothing_it_knows_gets_sorry():
    u = user_for(make_task())
    assert u.reply("What is your favourite colour?") == DONT_KNOW
    assert u.reply("could you tell me your rider id") == DONT_KNOW  # a question without "?"


# ---------------------------------------------------------------------- 3. confirmation

@pytest.mark.parametrize("ask", ["Shall I go ahead and rent it?", "Do you want me to rent bike BK-0001?",
                                 "I found the bike. Should I proceed?", "Can I go ahead?",
                                 "Renting BK-0001 for you, is that correct?", "Please confirm and I will rent it."])
def test_it_confirms_before_a_write(ask):
    assert user_for(make_task()).reply(ask) == GO_AHEAD


def test_facts_come_before_the_confirmation():
    u = user_for(make_task())
    assert u.reply("What is the serial? Shall I rent it then?") == f"The serial is BK123-AB. {GO_AHEAD}"


def test_proceed_in_a_statement_is_no_request_to_confirm():
    u = user_for(make_task())
    said = u.reply("I could not proceed with that yet.")
    assert said != GO_AHEAD and said.startswith("Could you tell me")


# ---------------------------------------------------------------------- 4. the outcome reported

def test_it_stops_once_every_required_value_is_reported():
    u = user_for(make_task())
    assert u.reply("Done. balance: 30.50; rental id: RNT-0061") == THANKS
    assert STOP in THANKS
    assert u.done and u.reply("Anything else?") == STOP  # once ended, it stays ended


def test_values_told_over_several_messages_count_together():
    u = user_for(make_task())
    assert u.reply("Your rental id is RNT-0061.") == "Could you tell me the balance?"
    assert u.reply("And the balance is $30.50.") == THANKS


def test_it_asks_for_what_is_missing_then_gives_up_after_two_turns_without_progress():
    u = user_for(make_task(asks=()))
    assert u.reply("Let me check that for you.") == "Could you tell me the balance and the rental id?"
    assert not u.done
    assert u.reply("Still looking.") == GIVE_UP
    assert u.done and STOP in GIVE_UP


def test_progress_gives_the_agent_another_turn():
    u = user_for(make_task(asks=()))
    assert u.reply("Let me check.") == "Could you tell me the balance and the rental id?"
    assert u.reply("The rental id is RNT-0061.") == "Could you tell me the balance?"  # progress: not the end
    assert u.reply("Hold on.") == "Could you tell me the balance?"
    assert u.reply("One moment.") == GIVE_UP


def test_it_stops_when_a_refusal_is_reported():
    u = user_for(make_task("refused", values=(("repair", "bikes.status"),)))
    assert u.reply("I could not do that. status: repair") == THANKS


def test_a_success_claim_on_a_refusal_is_not_a_report_of_the_outcome():
    u = user_for(make_task("refused", values=(("repair", "bikes.status"),)))
    said = u.reply("Your rental is booked.")
    assert said == "Could you tell me whether it was done, and if not, what is blocking it?"
    assert u.reply("I rented the bike. status: repair") == said  # the blocker is progress, not a refusal
    assert u.reply("I rented the bike.") == said
    assert u.reply("It is rented.") == GIVE_UP


def test_how_can_i_help_gets_the_reason_unless_it_would_tell_a_withheld_fact():
    u = user_for(make_task(reason="I want to rent a bike for the afternoon."))
    assert u.reply("Hello! How can I help you today?") == "I want to rent a bike for the afternoon."
    leaky = make_task(reason="I want to rent a bike; my email is ann@x.com.", instruction="Hi, I need a bike.")
    assert user_for(leaky).reply("How can I help?") == "Hi, I need a bike."


# ---------------------------------------------------------------------- it volunteers nothing

WITHHELD = make_task(instruction="Hi, I'd like to rent a bike, please.", reason="I need a bike today.")
SMALL_TALK = ["Hello!", "Let me look into it.", "How can I help you?", "Anything else?", "Thanks for waiting.",
              "Is there something specific?", "I found 3 bikes at the station.", "Shall I continue?",
              "What is your rental id?", "Please hold.", "Sorry, what did you say?", "OK."]


def test_an_agent_that_never_asks_for_a_fact_is_told_none():
    u = user_for(WITHHELD)
    replies = [u.reply(t) for t in SMALL_TALK]
    told = " ".join(replies)
    for value in KNOWN.values():
        assert value not in told
    assert replies[0].startswith("Could you tell me")


def test_the_scripted_user_is_deterministic():
    def talk() -> list[str]:
        u = user_for(WITHHELD)
        return [u.reply(t) for t in [*SMALL_TALK[:4], "What is your email?", *SMALL_TALK[4:]]]

    assert talk() == talk()


def test_start_begins_a_new_conversation():
    u = ScriptedUser(INTENTS)
    with pytest.raises(ValueError, match=r"reply\(\) before start"):
        u.reply("hi")
    u.start(make_task())
    u.reply("Done. balance: 30.5; rental id: RNT-0061")
    assert u.done
    u.start(make_task())
    assert not u.done and u.reply("What is your email?").startswith("My email is ann@x.com")


def test_make_user_by_name():
    assert isinstance(make_user("scripted"), ScriptedUser)
    assert make_user("none") is None
    with pytest.raises(ValueError, match=r"unknown user 'llm': use scripted, none"):
        make_user("llm")


# ---------------------------------------------------------------------- Environment.reply

@pytest.fixture(scope="module")
def runtime(bike_domain):
    from core.runtime.env import DomainRuntime

    return DomainRuntime(bike_domain)


@pytest.fixture(scope="module")
def bike_tasks(bike_domain, runtime):
    from core.tasks.generator import TaskGenerator

    tasks, _ = TaskGenerator(bike_domain, runtime, seed=0).generate(6)
    assert any(t.is_refusal for t in tasks) and any(not t.is_refusal for t in tasks), "test setup"
    return tasks


def _withhold_email(task: Task) -> Task:
    t = task.model_copy(deep=True)
    email = t.scenario.known.get("email")
    assert email, "test setup: a task with a persona"
    t.scenario.instruction = t.scenario.instruction.replace(f" (email {email})", "").replace(email, "my email")
    assert email not in t.scenario.instruction
    return t


def test_environment_reply_answers_as_the_tasks_scripted_user_and_says_when_it_is_done(runtime, bike_tasks):
    from core.runtime.env import Environment
    from core.tasks.generator import oracle_messages

    task = _withhold_email(next(t for t in bike_tasks if "email" in t.scenario.known))
    env = Environment(runtime)
    with pytest.raises(ValueError, match=r"reply\(\) before reset\(\)"):
        env.reply("hi")
    obs = env.reset(task)
    assert obs["user"] == task.scenario.instruction
    assert env.reply("What is your email?") == {"user": f"My email is {task.scenario.known['email']}.",
                                                "done": False}
    for step in task.chain:
        assert isinstance(env.step({"name": step.tool, "arguments": step.args}), dict)
    report = oracle_messages(task)[-1]["content"]
    assert env.reply(report) == {"user": THANKS, "done": True}
    assert env.reply("Anything else?") == {"user": STOP, "done": True}
    env.reset(task)  # a new episode, a new user
    assert env.reply(report) == {"user": THANKS, "done": True}
    env.close()


def test_environment_reply_on_a_refusal_reads_the_claims_with_the_tools_intents(runtime, bike_tasks):
    from core.agents.user import goal_intents
    from core.runtime.env import Environment

    task = next(t for t in bike_tasks if t.is_refusal)
    env = Environment(runtime, task)
    goals = goal_intents(task, runtime.intents)
    assert goals and all("{" in g for g in goals), "test setup: bike_rental's tools have intent phrases"
    verb = goals[-1].split()[0]
    from core.evaluation.claims import past_forms

    assert not env.reply(f"I {past_forms(verb)[0]} it for you.")["done"]  # a claim of success is no report
    assert env.reply("I could not do that.")["done"]
    env.close()


# ---------------------------------------------------------------------- scaleenv eval --user

def test_eval_takes_the_user_and_says_it_in_the_json(tmp_path, capsys, monkeypatch, bike_domain, bike_tasks):
    from core.data.store import Workspace
    from scaleenv_tui.cli import main

    monkeypatch.delenv("SCALEENV_WORKSPACE", raising=False)
    w = Workspace(tmp_path / "ws")
    w.save_domain(bike_domain)
    w.replace_tasks("bike_rental", [_withhold_email(t) if "email" in t.scenario.known else t for t in bike_tasks])
    docs = {}
    for user in ("scripted", "none", None, ""):
        argv = ["eval", "--all", "--agent", "oracle", "--workspace", str(tmp_path / "ws"), "--json"]
        assert main(argv + ([] if user is None else ["--user", user] if user else ["--user"])) == 0
        docs[user] = json.loads(capsys.readouterr().out)
    assert {k: (d["user"], d["tasks"], d["pass_rate"]) for k, d in docs.items()} == {
        "scripted": ("scripted", 6, 1.0), "none": ("none", 6, 1.0),
        None: ("scripted", 6, 1.0), "": ("scripted", 6, 1.0)}  # the default; a bare --user
    assert set(docs["none"]) == {"agent", "user", "tasks", "passed", "pass_rate", "domains", "seconds"}
    for argv, error in ((["--user", "llm"], "invalid choice: 'llm'"),
                        # the acceptance check's probe for -k: the flag is named, not --user's value
                        (["--user", "-k", "2", "scripted"], "unrecognized arguments: -k")):
        try:
            code = main(["eval", *argv, "--workspace", str(tmp_path / "ws"), "--json"])
        except SystemExit as e:
            code = e.code
        assert code == 2 and error in capsys.readouterr().err
