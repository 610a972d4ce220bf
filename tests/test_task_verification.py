"""Task verification (docs/tasks.md, "How a task is generated" steps 9-11, and "Verification").

What ``TaskGenerator`` records as a task's ground truth, which values the agent must tell the user
(``_values``), when an attempt is dropped and with which reason (the reasons ``generate`` counts in
``GenStats.drop_reasons``, shown by ``scaleenv tasks generate --json``), what the oracle says, and
the bookkeeping of ``generate``.

Attempts run the real pipeline on bike_rental. To reach one rule, a test chooses the attempt's goals
(``_pick_goals``) and, for a refusal, which requirement is made false (``_refusable``); the
arranger, the references, the chain and the ground truth are the generator's own. The spy on
``_record`` only keeps a copy of the chain it is handed, so a test can tell how the user names a
record (``sources``) even when the attempt is dropped.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

import core.tasks.generator
from core.data.db import IntegrityError
from core.data.taskmodel import ChainStep, Identification, Task
from core.evaluation.reward import RequiredValue
from core.runtime.env import DomainRuntime, Environment
from core.tasks.generator import Drop, Goal, TaskGenerator, oracle_messages

TAIL = "If that is not possible, tell me exactly what is blocking it."
BLOCKS = "what blocks the request"


@pytest.fixture(scope="module")
def runtime(bike_domain):
    return DomainRuntime(bike_domain)


@pytest.fixture
def gen(bike_domain, runtime):
    return TaskGenerator(bike_domain, runtime, seed=0)


@dataclass
class Tried:
    index: int
    chain: list[ChainStep] | None  # the chain handed to the ground-truth step; None: dropped before it
    task: Task | None
    drop: str | None

    def source(self, tool: str, param: str) -> str:
        """How the user gives ``param`` of goal ``tool``: "user", "lookup" or "step"."""
        return next(s.sources[param] for s in self.chain if s.role == "goal" and s.tool == tool)


def force_goals(gen, monkeypatch, ops: list[str], violate: int | None = None,
                fixed: dict[int, dict[str, str]] | None = None) -> None:
    """Attempts get the goals ``ops`` in this order (``fixed``: goal -> {param: output field of the
    previous goal}); with ``violate``, a refusal makes that requirement of the last goal false."""
    monkeypatch.setattr(gen, "_pick_goals", lambda rng, min_goals=1, actor="customer", refusal=False: [
        Goal(gen.ops[name], {}, dict((fixed or {}).get(i, {}))) for i, name in enumerate(ops)])
    if violate is not None:
        monkeypatch.setattr(gen, "_refusable", lambda op: [violate] if op.name == ops[-1] else [])
    # staff operations are asked for by staff (a customer asking is dropped): the task is staff's
    actors = {gen.ops[name].spec.actor for name in ops}
    monkeypatch.setattr(gen, "p_staff", 1.0 if "staff" in actors else 0.0)


def tried(gen, monkeypatch, ops: list[str], indices=range(1, 9), *, refusal: bool = False,
          violate: int | None = None, fixed: dict[int, dict[str, str]] | None = None) -> list[Tried]:
    force_goals(gen, monkeypatch, ops, violate, fixed)
    seen: dict[str, Any] = {}
    record = gen._record

    def spy(task, goals, refs, persona):
        seen["chain"] = [s.model_copy(deep=True) for s in task.chain]
        return record(task, goals, refs, persona)

    monkeypatch.setattr(gen, "_record", spy)
    out = []
    for i in indices:
        seen.clear()
        try:
            task, drop = gen.attempt(i, refusal=refusal, distract=False), None
        except Drop as e:
            task, drop = None, str(e)
        out.append(Tried(i, seen.get("chain"), task, drop))
    return out


def recorded(runs: list[Tried]) -> list[Task]:
    tasks = [r.task for r in runs if r.task is not None]
    assert tasks, [r.drop for r in runs]
    return tasks


def goal_step(task: Task, tool: str) -> ChainStep:
    return next(s for s in task.chain if s.role == "goal" and s.tool == tool)


def replay(runtime, task: Task) -> tuple[Environment, list[dict[str, Any]]]:
    env = Environment(runtime, task)
    return env, [env.step({"name": s.tool, "arguments": s.args}) for s in task.chain]


# ---------------------------------------------------------------------- step 9: the ground truth


def test_a_completed_goal_records_its_changes_its_value_and_the_persona(gen, monkeypatch, runtime):
    task = recorded(tried(gen, monkeypatch, ["top_up_balance"], range(1, 3)))[0]
    goal = task.chain[-1]
    rid, amount = goal.args["rider_id"], goal.args["amount"]
    env = Environment(runtime, task)
    rider = env.db.get("riders", rid)  # in the initial state
    outs = [env.step({"name": s.tool, "arguments": s.args}) for s in task.chain]
    after = outs[-1]["result"]
    gt = task.ground_truth

    assert gt.outcome == "completed" and not task.is_refusal
    assert gt.final_hash == env.state_hash()
    assert gt.expected.updated == {"riders": {rid: env.db.get("riders", rid)}}
    assert after["balance"] == pytest.approx(rider["balance"] + amount)
    [payment] = gt.expected.inserted["payments"]
    assert (payment["rider_id"], payment["amount"], payment["kind"]) == (rid, amount, "top_up")
    assert set(gt.expected.inserted) == {"payments"} and not gt.expected.deleted
    assert gt.diff["riders"]["updated"] == [{"key": rid, "changes": {"balance": [rider["balance"], after["balance"]]}}]
    assert [r["payment_id"] for r in gt.diff["payments"]["inserted"]] == [payment["payment_id"]]
    # the value to tell: the blueprint's report field of top_up_balance
    assert gt.communicate == [RequiredValue(value=after["balance"], label="riders.balance",
                                            why="result of top_up_balance")]
    # the persona is the rider whose balance it is
    assert task.scenario.persona == f"{rider['name']}, a rider with email {rider['email']}"
    assert (task.scenario.known["name"], task.scenario.known["email"]) == (rider["name"], rider["email"])
    assert task.scenario.actor == "customer"
    # the user asks for what they want to hear, by the column's noun
    assert task.scenario.asks == ["balance"] and "the balance" in task.scenario.instruction
    assert oracle_messages(task) == [{"role": "user", "content": task.scenario.instruction},
                                     {"role": "assistant", "content": f"Done. balance: {after['balance']}"}]
    assert env.evaluate(oracle_messages(task)).reward == 1.0


def test_a_refused_goal_tells_the_stored_value_that_blocks_it(gen, monkeypatch, runtime):
    """refund_pass with its pass run out: nothing changes, and the user is told the pass's date."""
    for task in recorded(tried(gen, monkeypatch, ["refund_pass"], range(1, 4), refusal=True, violate=1)):
        env, outs = replay(runtime, task)
        err = outs[-1]["error"]
        assert err["kind"] == "precondition" and task.chain[-1].expect == "precondition"
        gt = task.ground_truth
        assert gt.outcome == "refused" and task.is_refusal
        assert gt.expected.model_dump() == {"inserted": {}, "updated": {}, "deleted": {}}
        assert gt.communicate == [RequiredValue(value=err["observed"]["passes.valid_until"],
                                                label="passes.valid_until", why=BLOCKS)]
        # a refusal reads like any other request: it asks for what refund_pass would report, and
        # nothing hints that it may fail (the policy says to tell what blocks it)
        assert TAIL not in task.scenario.instruction and "not possible" not in task.scenario.instruction
        assert task.scenario.asks == ["balance"] and "the balance" in task.scenario.instruction
        assert oracle_messages(task)[-1] == {"role": "assistant",
                                             "content": f"I could not do that. valid until: {gt.communicate[0].value}"}


def test_each_goal_tells_its_own_report_fields_in_chain_order(gen, monkeypatch, runtime):
    """top up, then buy a pass for the same rider: the balance, then the pass id and its date."""
    tasks = recorded(tried(gen, monkeypatch, ["top_up_balance", "buy_pass"], range(1, 3),
                           fixed={1: {"rider_id": "rider_id"}}))
    for task in tasks:
        env, outs = replay(runtime, task)
        (_, topped), (buy, bought) = [(s, o["result"]) for s, o in zip(task.chain, outs, strict=True) if s.role == "goal"]
        assert (buy.args["rider_id"], buy.sources["rider_id"]) == (topped["rider_id"], "step")
        # the balance to tell is the one at the end: the pass was paid from the topped-up balance
        final = env.db.get("riders", topped["rider_id"])["balance"]
        assert final != topped["balance"]
        assert task.ground_truth.communicate == [
            RequiredValue(value=final, label="riders.balance", why="result of top_up_balance"),
            RequiredValue(value=bought["pass_id"], label="passes.pass_id", why="result of buy_pass"),
            RequiredValue(value=bought["valid_until"], label="passes.valid_until", why="result of buy_pass")]
        expiry = gen.schema.table("passes").column("valid_until").noun
        assert task.scenario.asks == ["balance", "pass id", expiry]
        assert f"the balance, the pass id and the {expiry}" in task.scenario.instruction
        assert task.expansion == ["extended"]


def test_a_value_two_goals_give_is_told_once(gen, monkeypatch, runtime):
    tasks = recorded(tried(gen, monkeypatch, ["close_station", "close_station"], range(1, 5)))
    for task in tasks:
        env, _ = replay(runtime, task)
        goals = [s for s in task.chain if s.role == "goal"]
        assert [env.db.get("stations", s.args["station_id"])["status"] for s in goals] == ["closed", "closed"]
        assert task.ground_truth.communicate == [RequiredValue(value="closed", label="stations.status",
                                                               why="result of close_station")]
        assert oracle_messages(task)[-1]["content"] == "Done. status: closed"


@pytest.mark.parametrize("op, inserted, updated", [
    ("suspend_rider", set(), {"riders"}),  # changes a row only
    ("register_rider", {"riders"}, set()),  # adds a row only
    ("report_fault", {"repair_tickets"}, {"bikes"}),
])
def test_a_write_that_changes_the_state_is_kept(gen, monkeypatch, op, inserted, updated):
    for task in recorded(tried(gen, monkeypatch, [op], range(1, 3))):
        exp = task.ground_truth.expected
        assert (set(exp.inserted), set(exp.updated), exp.deleted) == (inserted, updated, {})


def test_a_read_only_goal_is_kept_when_its_value_cannot_be_guessed(gen, monkeypatch, runtime):
    for task in recorded(tried(gen, monkeypatch, ["rider_summary"], range(1, 3))):
        _, outs = replay(runtime, task)
        gt = task.ground_truth
        assert gt.expected.model_dump() == {"inserted": {}, "updated": {}, "deleted": {}}
        assert gt.communicate[0] == RequiredValue(value=outs[-1]["result"]["balance"], label="rider_summary.balance",
                                                  why="result of rider_summary")


# ---------------------------------------------------------------------- step 11: what is left to check


def test_a_value_the_instruction_states_is_not_asked_for(gen, monkeypatch):
    """Move a bike, then suspend a rider: when the user names the station by its id, the station id is
    no value to tell, and "Please tell me the ..." names only the status."""
    runs = [r for r in tried(gen, monkeypatch, ["move_bike", "suspend_rider"], range(1, 6)) if r.task is not None]
    by_id = [r for r in runs if r.source("move_bike", "station_id") == "user"]
    by_lookup = [r for r in runs if r.source("move_bike", "station_id") == "lookup"]
    assert by_id and by_lookup
    suspended = RequiredValue(value="suspended", label="riders.status", why="result of suspend_rider")
    for r in by_id:
        station = goal_step(r.task, "move_bike").args["station_id"]
        assert station in r.task.scenario.instruction
        assert r.task.ground_truth.communicate == [suspended]
        assert r.task.scenario.asks == ["status"] and "station id" not in r.task.scenario.instruction
        # composed again for the same persona: both are staff operations, asked by staff
        assert r.task.scenario.actor == "staff" and r.task.scenario.persona.endswith("(staff)")
        assert oracle_messages(r.task)[-1]["content"] == "Done. status: suspended"
    for r in by_lookup:
        station = goal_step(r.task, "move_bike").args["station_id"]
        assert r.task.ground_truth.communicate == [
            RequiredValue(value=station, label="bikes.station_id", why="result of move_bike"), suspended]
        assert r.task.scenario.asks == ["station id", "status"]
        assert "the station id and the status" in r.task.scenario.instruction


def test_a_refusal_composed_again_still_asks_for_no_value(gen, monkeypatch):
    runs = tried(gen, monkeypatch, ["move_bike", "close_station", "refund_pass"], range(1, 5), refusal=True, violate=1)
    by_id = [r for r in runs if r.task is not None and r.source("move_bike", "station_id") == "user"]
    assert by_id
    for r in by_id:
        assert [(v.label, v.why) for v in r.task.ground_truth.communicate] == [
            ("stations.status", "result of close_station"), ("passes.valid_until", BLOCKS)]
        assert TAIL not in r.task.scenario.instruction
        # what the done goal reports, then what the refused one would have: the blocker is the policy's
        assert r.task.scenario.asks == ["status", "balance"]


@pytest.mark.parametrize("refusal, violate, reason", [
    (False, None, "every value to tell is already in the user's words"),
    (True, 2, "what blocks the request is already in the user's words"),  # the bike is already at that station
])
def test_an_attempt_whose_values_the_user_already_said_is_dropped(gen, monkeypatch, refusal, violate, reason):
    """move_bike's only value is the station: stated when the user names the station by its id."""
    runs = [r for r in tried(gen, monkeypatch, ["move_bike"], range(1, 9), refusal=refusal, violate=violate)
            if r.chain is not None]
    by_id = [r for r in runs if r.source("move_bike", "station_id") == "user"]
    by_lookup = [r for r in runs if r.source("move_bike", "station_id") == "lookup"]
    assert by_id and by_lookup
    assert [r.drop for r in by_id] == [reason] * len(by_id)
    for r in by_lookup:
        station = goal_step(r.task, "move_bike").args["station_id"]
        assert [v.value for v in r.task.ground_truth.communicate] == [station]
        assert station not in r.task.scenario.instruction


@pytest.mark.parametrize("ops, violate, fixed, reason", [
    (["start_rental"], 3, None, "the refusal has no value that shows the user why"),  # bikes.station_id is null
    (["suspend_rider"], 0, None, "nothing to check but values that could be guessed"),  # riders.status: a status word
    (["suspend_rider", "reinstate_rider"], None, {1: {"rider_id": "rider_id"}},
     "the goals undo each other: nothing in the final state to check"),
])
def test_generate_counts_the_reason_an_attempt_is_dropped(bike_domain, runtime, monkeypatch, ops, violate, fixed,
                                                          reason):
    share = 1.0 if violate is not None else 0.0  # every attempt a refusal, or none
    gen = TaskGenerator(bike_domain, runtime, seed=0, p_refusal=share, p_distractors=0.0)
    force_goals(gen, monkeypatch, ops, violate, fixed)
    tasks, stats = gen.generate(1, max_attempts=3)
    assert tasks == [] and (stats.attempted, stats.verified, stats.dropped) == (3, 0, 3)
    assert stats.drop_reasons == Counter({reason: 3})
    assert stats.to_dict()["drop_reasons"] == {reason: 3}


def test_an_attempt_with_nothing_to_tell_is_dropped(gen, monkeypatch):
    force_goals(gen, monkeypatch, ["top_up_balance"])
    monkeypatch.setattr(gen, "_values", lambda op, out: [])  # a goal whose result holds nothing worth telling
    with pytest.raises(Drop, match="^nothing the agent must tell the user$"):
        gen.attempt(1, refusal=False, distract=False)


def test_a_step_that_does_not_give_its_expected_outcome_is_dropped(gen, monkeypatch):
    force_goals(gen, monkeypatch, ["top_up_balance"])
    record = gen._record

    def expect_a_refusal(task, goals, refs, persona):
        task.chain[-1].expect = "precondition"
        return record(task, goals, refs, persona)

    monkeypatch.setattr(gen, "_record", expect_a_refusal)
    with pytest.raises(Drop, match="^step top_up_balance gave ok, expected precondition$"):
        gen.attempt(1, refusal=False, distract=False)


# ---------------------------------------------------------------------- verification


def test_an_oracle_that_does_not_score_1_drops_the_attempt_with_the_reward_reasons(gen, monkeypatch):
    force_goals(gen, monkeypatch, ["buy_pass"])
    real = oracle_messages
    monkeypatch.setattr(core.tasks.generator, "oracle_messages", lambda task: real(task)[:1])  # it only repeats the request
    with pytest.raises(Drop, match=r"^the oracle does not score 1: the agent did not tell the user passes\.pass_id = "
                                   r"'PSS-\d+'; the agent did not tell the user passes\.valid_until = '2026-04-01'"):
        gen.attempt(1, refusal=False, distract=False)


def test_an_attempt_where_doing_nothing_scores_is_dropped(gen, monkeypatch):
    class Lenient(Environment):  # a reward that passes whatever the agent did
        def evaluate(self, messages):
            return super().evaluate(messages).model_copy(update={"reward": 1.0})

    force_goals(gen, monkeypatch, ["top_up_balance"])
    monkeypatch.setattr(core.tasks.generator, "Environment", Lenient)
    with pytest.raises(Drop, match="^doing nothing scores$"):
        gen.attempt(1, refusal=False, distract=False)


# ---------------------------------------------------------------------- _values


def refused(observed: dict[str, Any]) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": "precondition", "message": "not allowed", "observed": observed}}


@pytest.mark.parametrize("observed, told", [
    ({"bikes.status": "repair", "riders.balance": 12.5}, ("riders.balance", 12.5)),
    ({"riders.status": "suspended", "passes.valid_until": "2026-02-24"}, ("passes.valid_until", "2026-02-24")),
    ({"riders.balance": 0.5, "stations.capacity": 12}, ("stations.capacity", 12)),  # |0.5| < 2 is trivial
])
def test_a_refusal_tells_one_stored_value_a_number_or_date_before_a_status_word(gen, observed, told):
    assert gen._values(gen.ops["start_rental"], refused(observed)) == [
        RequiredValue(value=told[1], label=told[0], why=BLOCKS)]


def test_a_refusal_tells_no_aggregate_clock_or_trivial_value(gen):
    observed = {"sum(payments.amount, kind='rental_charge')": 42.5, "count(rentals, status='active')": 3,
                "today": "2026-03-02", "riders.balance": 1.5, "bikes.station_id": None, "riders.active": True,
                "bikes.serial": "X"}
    assert gen._values(gen.ops["start_rental"], refused(observed)) == []


def summary(runtime, gen, rider_id: str) -> dict[str, Any]:
    db = gen._db()
    try:
        return runtime.call(db, gen.ctx, "rider_summary", {"rider_id": rider_id}).to_dict()
    finally:
        db.close()


def without_report(op):
    return dataclasses.replace(op, spec=op.spec.model_copy(update={"report": []}))


def test_a_goal_tells_its_report_fields_that_are_not_trivial(gen, runtime):
    outs = [summary(runtime, gen, r["rider_id"]) for r in gen.seed_rows["riders"]]
    spent_nothing = [o for o in outs if o["result"]["spent"] == 0 and o["result"]["balance"] >= 2]
    spent = [o for o in outs if o["result"]["spent"] >= 2 and o["result"]["balance"] >= 2]
    assert spent_nothing and spent
    op = gen.ops["rider_summary"]
    for out in spent_nothing:
        assert gen._values(op, out) == [RequiredValue(value=out["result"]["balance"], label="rider_summary.balance",
                                                      why="result of rider_summary")]
    for out in spent:
        assert [(v.label, v.value) for v in gen._values(op, out)] == [
            ("rider_summary.balance", out["result"]["balance"]), ("rider_summary.spent", out["result"]["spent"])]


def test_without_report_fields_a_goal_tells_the_primary_key_of_the_row(gen, runtime):
    row = dict(gen.seed_rows["riders"][0])
    op = gen.ops["get_rider"]  # a derived read tool: no report fields
    assert op.spec.report == []
    expected = [RequiredValue(value=row["rider_id"], label="riders.rider_id", why="result of get_rider")]
    assert gen._values(op, {"ok": True, "result": row}) == expected
    # the id column need not come first in a blueprint's table
    later = {k: v for k, v in row.items() if k != "rider_id"} | {"rider_id": row["rider_id"]}
    assert gen._values(op, {"ok": True, "result": later}) == expected
    # report fields that are all trivial count as none
    out = summary(runtime, gen, row["rider_id"])
    out["result"].update(balance=0.0, spent=1.0)
    assert gen._values(gen.ops["rider_summary"], out) == [
        RequiredValue(value=row["rider_id"], label="rider_summary.rider_id", why="result of rider_summary")]


def test_without_report_fields_or_a_row_a_goal_tells_the_first_non_trivial_field(gen):
    op = without_report(gen.ops["rider_summary"])  # returns an object, not a table's row
    result = {"active_rentals": 0, "flag": True, "note": "x", "spent": 37.25, "balance": 12.0}
    assert gen._values(op, {"ok": True, "result": result}) == [
        RequiredValue(value=37.25, label="rider_summary.spent", why="result of rider_summary")]
    assert gen._values(op, {"ok": True, "result": [result]}) == []  # a list of rows: nothing to tell


# ---------------------------------------------------------------------- _guessable, _identified


@pytest.mark.parametrize("value, guessable", [
    (True, True), (False, True), ("repair", True), ("flat_tire", True), ("closed", True),
    ("2026-03-01", False), ("Crystal Johnson", False), ("RDR-0019", False), (130.65, False), (3, False),
])
def test_only_enum_values_and_booleans_can_be_guessed(gen, value, guessable):
    assert gen._guessable(value) is guessable


def test_an_identification_must_select_exactly_its_target(gen):
    db = gen._db()
    try:
        active = db.keys("riders", status="active")
        rider = db.get("riders", active[0])
        assert len(active) > 1
        assert gen._identified(db, [Identification(table="riders", filters={"email": rider["email"]},
                                                   target=active[0])])
        assert not gen._identified(db, [Identification(table="riders", filters={"status": "active"},
                                                       target=active[0])])
        assert not gen._identified(db, [Identification(table="riders", filters={"email": rider["email"]},
                                                       target=active[1])])
        assert not gen._identified(db, [
            Identification(table="riders", filters={"email": rider["email"]}, target=active[0]),
            Identification(table="riders", filters={"email": "nobody@example.com"}, target=active[0])])
    finally:
        db.close()


# ---------------------------------------------------------------------- generate


def test_generate_numbers_attempts_and_counts_what_it_kept(gen, monkeypatch):
    calls, made = [], {}
    attempt = gen.attempt

    def spy(index, **kw):
        calls.append(index)
        task = attempt(index, **kw)
        made[id(task)] = index
        return task

    monkeypatch.setattr(gen, "attempt", spy)
    tasks, stats = gen.generate(5)
    assert stats.name == "bike_rental" and stats.to_dict()["name"] == "bike_rental"
    assert calls == list(range(1, stats.attempted + 1))  # attempts are numbered 1, 2, 3, ...
    assert [t.id for t in tasks] == [f"bike_rental-0-{made[id(t)]:05d}" for t in tasks]  # a task's id: its attempt
    assert stats.verified == len(tasks) == 5
    assert stats.attempted == stats.verified + stats.dropped
    assert sum(stats.drop_reasons.values()) == stats.dropped
    assert stats.chain_lengths == Counter(len(t.chain) for t in tasks)
    assert stats.max_chain == max(len(t.chain) for t in tasks)
    assert stats.refusals == sum(t.is_refusal for t in tasks) >= 1
    assert stats.with_distractors == sum(t.has_distractors for t in tasks) >= 2


def fake_task(index: int, *, length: int = 1, refusal: bool = False, distractors: bool = False,
              args: dict | None = None) -> SimpleNamespace:
    """What generate reads of a task: its chain (tools and arguments) and its expansion."""
    step = SimpleNamespace(tool="top_up_balance", args=args if args is not None else {"attempt": index}, role="goal")
    return SimpleNamespace(chain=[step] * length, is_refusal=refusal, has_distractors=distractors,
                           scenario=SimpleNamespace(actor="customer"))


class Script:
    """A stand-in for ``attempt``: records how it is asked, and answers from ``plan(index, refusal,
    distract, min_goals)`` (a task, or an exception to raise)."""

    def __init__(self, plan):
        self.plan, self.calls = plan, []

    def __call__(self, index, refusal=None, distract=None, min_goals=1):
        self.calls.append((index, refusal, distract, min_goals))
        got = self.plan(index, refusal, distract, min_goals)
        if isinstance(got, BaseException):
            raise got
        return got


def test_generate_forces_refusals_and_distractors_to_keep_their_shares(bike_domain, runtime, monkeypatch):
    """A refusal is forced while verified refusals are fewer than p_refusal of the next task count,
    distractors likewise; a forced attempt is asked for it (True), any other is left to chance (None)."""
    gen = TaskGenerator(bike_domain, runtime, seed=0, p_refusal=0.25, p_distractors=0.5)
    script = Script(lambda i, r, d, m: fake_task(i, refusal=bool(r), distractors=bool(d)))
    monkeypatch.setattr(gen, "attempt", script)
    tasks, stats = gen.generate(10)
    # refusals: 0 < .25*1, then 1 < .25*5, then 2 < .25*9 (1 is not fewer than .25*4, 2 not than .25*8)
    assert [c[1] for c in script.calls] == [True, None, None, None, True, None, None, None, True, None]
    # distractors: forced on every other task (1 is not fewer than .5*2, 2 not than .5*4, ...)
    assert [c[2] for c in script.calls] == [True, None] * 5
    assert (stats.refusals, stats.with_distractors, stats.verified, len(tasks)) == (3, 5, 10, 10)


def test_generate_asks_for_long_chains_once_a_third_is_verified_without_one(bike_domain, runtime, monkeypatch):
    gen = TaskGenerator(bike_domain, runtime, seed=0)
    lengths = {5: 5}  # attempt 5 makes a chain of 5 steps; every other one step
    script = Script(lambda i, r, d, m: fake_task(i, length=lengths.get(i, 1)))
    monkeypatch.setattr(gen, "attempt", script)
    _, stats = gen.generate(10)
    # 10 // 3 = 3 tasks verified with no chain of 5: attempts 4 and 5 ask for 3 goals; after attempt 5, no more
    assert [c[3] for c in script.calls] == [1, 1, 1, 3, 3, 1, 1, 1, 1, 1]
    assert stats.chain_lengths == Counter({1: 9, 5: 1}) and stats.max_chain == 5


def test_generate_drops_a_chain_it_already_has_whatever_the_order_of_its_arguments(bike_domain, runtime, monkeypatch):
    gen = TaskGenerator(bike_domain, runtime, seed=0)
    same = {2: {"rider_id": "RDR-0001", "amount": 10}, 3: {"amount": 10, "rider_id": "RDR-0001"},
            4: {"rider_id": "RDR-0001", "amount": 10}}
    script = Script(lambda i, r, d, m: fake_task(i, args=same.get(i)))
    monkeypatch.setattr(gen, "attempt", script)
    tasks, stats = gen.generate(4)
    assert [t.chain[0].args for t in tasks] == [{"attempt": 1}, same[2], {"attempt": 5}, {"attempt": 6}]
    assert (stats.attempted, stats.verified, stats.dropped) == (6, 4, 2)
    assert stats.drop_reasons == Counter({"duplicate of an earlier task": 2})


def test_generate_counts_every_failed_attempt_by_its_reason(bike_domain, runtime, monkeypatch):
    gen = TaskGenerator(bike_domain, runtime, seed=0)
    long_reason = "the scenario does not state " + "x" * 200
    fails = {1: Drop("no requirement of the goal can be shown to the user"), 2: ValueError("no row fits"),
             3: IntegrityError("riders.balance: not a number"), 4: Drop(long_reason),
             5: Drop("no requirement of the goal can be shown to the user")}
    script = Script(lambda i, r, d, m: fails.get(i) or fake_task(i))
    monkeypatch.setattr(gen, "attempt", script)
    tasks, stats = gen.generate(2)
    assert len(tasks) == 2 and (stats.attempted, stats.dropped) == (7, 5)
    assert stats.drop_reasons == Counter({"no requirement of the goal can be shown to the user": 2,
                                          "could not make rows: no row fits": 1,
                                          "could not make rows: riders.balance: not a number": 1,
                                          long_reason[:120]: 1})


@pytest.mark.parametrize("n, max_attempts, attempted", [(2, None, 40), (3, None, 60), (4, 5, 5)])
def test_generate_stops_after_its_attempts(bike_domain, runtime, monkeypatch, n, max_attempts, attempted):
    """At most 20 attempts per task asked for, or max_attempts."""
    gen = TaskGenerator(bike_domain, runtime, seed=0)
    script = Script(lambda i, r, d, m: Drop("could not build a state for the goal"))
    monkeypatch.setattr(gen, "attempt", script)
    tasks, stats = gen.generate(n, max_attempts)
    assert tasks == [] and (stats.attempted, stats.dropped, len(script.calls)) == (attempted, attempted, attempted)
    assert stats.drop_reasons == Counter({"could not build a state for the goal": attempted})


def test_generate_reports_the_seconds_it_took(bike_domain, runtime, monkeypatch):
    clock = iter([100.0, 102.5])
    monkeypatch.setattr(core.tasks.generator, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    gen = TaskGenerator(bike_domain, runtime, seed=0)
    monkeypatch.setattr(gen, "attempt", Script(lambda i, r, d, m: fake_task(i)))
    _, stats = gen.generate(2)
    assert stats.seconds == 2.5 and stats.to_dict()["seconds"] == 2.5
