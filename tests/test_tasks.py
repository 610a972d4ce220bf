"""Phase 2: verified tasks, the environment API, rewards, agents, and the tasks/eval CLI."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.agents import OracleAgent, RandomAgent, run_episode
from core.env import DomainRuntime, EnvBatch, Environment
from core.reward import Expected, RequiredValue, compare_state, value_mentioned
from core.tasks import TaskGenerator, oracle_messages


@pytest.fixture(scope="module")
def runtime(bike_domain):
    return DomainRuntime(bike_domain)


@pytest.fixture(scope="module")
def generated(bike_domain, runtime):
    return TaskGenerator(bike_domain, runtime, seed=3).generate(40)


def test_generates_verified_tasks_with_the_expected_mix(generated):
    tasks, stats = generated
    assert stats.verified == len(tasks) == 40
    assert len({t.id for t in tasks}) == 40
    assert stats.attempted == stats.verified + stats.dropped
    assert min(len(t.chain) for t in tasks) >= 1 and stats.max_chain >= 4
    assert any(t.is_refusal for t in tasks) and any(t.has_distractors for t in tasks)
    for t in tasks:
        assert t.ground_truth.communicate, "every task requires telling the user something"
        assert t.chain[-1].role == "goal"
        for fact in t.scenario.known.values():  # the rule check: the user states every fact needed
            assert value_mentioned(fact, t.scenario.instruction)
        for v in t.ground_truth.communicate:  # and never already says what the agent must find out
            assert not value_mentioned(v.value, t.scenario.instruction)


def test_oracle_scores_one_and_doing_nothing_scores_zero(generated, runtime):
    tasks, _ = generated
    env = Environment(runtime)
    for t in tasks:
        assert run_episode(env, t, OracleAgent()).reward.reward == 1.0
        env.reset(t)
        nothing = env.evaluate([{"role": "user", "content": t.scenario.instruction},
                                {"role": "assistant", "content": "All done!"}])
        assert nothing.reward == 0.0 and nothing.reasons


def test_random_agent_rarely_scores(generated, runtime):
    tasks, _ = generated
    env = Environment(runtime)
    wins = sum(run_episode(env, t, RandomAgent(seed=i)).reward.reward for i, t in enumerate(tasks))
    assert wins <= 2


def test_naming_every_guessable_value_never_scores(generated, runtime):
    from core.agents import GuesserAgent

    tasks, _ = generated
    env = Environment(runtime)
    assert sum(run_episode(env, t, GuesserAgent(runtime.schema)).reward.reward for t in tasks) == 0


def test_no_completed_task_has_an_empty_final_state_with_writes(generated):
    tasks, _ = generated
    for t in tasks:
        e = t.ground_truth.expected
        if not (e.inserted or e.updated or e.deleted):
            assert any(not isinstance(v.value, str) or v.value.count("-") or " " in v.value
                       or any(ch.isdigit() for ch in v.value) for v in t.ground_truth.communicate), t.id


def test_refusal_tasks_expect_no_change_and_the_blocking_value(generated):
    tasks, _ = generated
    refusals = [t for t in tasks if t.is_refusal]
    assert refusals
    for t in refusals:
        assert t.chain[-1].expect == "precondition"
        assert any(v.why == "what blocks the request" for v in t.ground_truth.communicate)


def test_identifications_are_unique_in_the_initial_state(generated, runtime):
    tasks, _ = generated
    for t in tasks:
        db = runtime.build_db(t.initial)
        for ident in t.identifications:
            assert db.keys(ident.table, **ident.filters) == [ident.target]
        db.close()


def test_max_chain_is_respected_even_when_tight(bike_domain, runtime):
    tasks, stats = TaskGenerator(bike_domain, runtime, seed=5, max_chain=1).generate(10)
    assert stats.verified == 10
    assert all(len(t.chain) == 1 for t in tasks)


def test_same_seed_same_tasks(bike_domain, runtime):
    a, _ = TaskGenerator(bike_domain, runtime, seed=9).generate(8)
    b, _ = TaskGenerator(bike_domain, runtime, seed=9).generate(8)
    c, _ = TaskGenerator(bike_domain, runtime, seed=10).generate(8)
    assert [t.model_dump_json() for t in a] == [t.model_dump_json() for t in b]
    assert [t.model_dump_json() for t in a] != [t.model_dump_json() for t in c]


def test_reset_restores_the_initial_state(generated, runtime):
    tasks, _ = generated
    t = next(t for t in tasks if not t.is_refusal and any(s.role == "goal" for s in t.chain))
    env = Environment(runtime, t)
    start = env.state_hash()
    for s in t.chain:
        env.step({"name": s.tool, "arguments": s.args})
    if t.ground_truth.diff:
        assert env.state_hash() != start
        assert env.diff()
    env.reset()
    assert env.state_hash() == start
    assert env.diff() == {}


def test_step_returns_errors_as_data(generated, runtime):
    tasks, _ = generated
    env = Environment(runtime, tasks[0])
    start = env.state_hash()
    assert env.step({"name": "no_such_tool", "arguments": {}})["error"]["kind"] == "unknown_tool"
    assert env.step({"name": "get_rider", "arguments": "{not json"})["error"]["kind"] == "invalid_argument"
    bad = env.step({"name": "top_up_balance", "arguments": {"rider_id": "RDR-0001", "amount": 10_000}})
    assert bad["error"]["kind"] == "invalid_argument" and bad["error"]["argument"] == "amount"
    missing = env.step({"name": "get_rider", "arguments": {"rider_id": "RDR-X404"}})
    assert missing["error"]["kind"] == "not_found"
    assert env.step({"arguments": {}})["error"]["kind"] == "invalid_call"
    assert env.state_hash() == start


def test_batch_api_sync_and_async(generated, runtime):
    tasks, _ = generated
    batch = EnvBatch([Environment(runtime) for _ in range(3)])
    obs = batch.reset(tasks[:3])
    assert all("tools" in o and o["user"] for o in obs)
    calls = [{"name": t.chain[0].tool, "arguments": t.chain[0].args} for t in tasks[:3]]
    sync = batch.step(calls)
    batch.reset(tasks[:3])
    res = asyncio.run(batch.astep(calls))
    assert [r["ok"] for r in res] == [r["ok"] for r in sync]


# ---------------------------------------------------------------------- rewards


def test_reward_matches_inserted_rows_in_any_order(bike_domain, runtime):
    from core.taskmodel import StateDelta

    schema = bike_domain.domain
    db = runtime.build_db(StateDelta())
    row = lambda amount: {"rider_id": "RDR-0001", "amount": amount, "kind": "top_up",  # noqa: E731
                          "created_at": "2026-03-02T09:00:00"}
    db.insert("payments", row(10.0))
    db.insert("payments", row(20.0))
    exp = Expected(inserted={"payments": [db.get("payments", k) for k in sorted(db.before["payments"])]})
    other = runtime.build_db(StateDelta())
    other.insert("payments", row(20.0))  # the other order: ids swap
    other.insert("payments", row(10.0))
    assert compare_state(schema, other, exp) == ([], [])
    wrong = runtime.build_db(StateDelta())
    wrong.insert("payments", row(20.0))
    wrong.insert("payments", row(11.0))
    reasons, mism = compare_state(schema, wrong, exp)
    assert mism and any(m["column"] == "amount" for m in mism)


def test_column_policies(bike_domain, runtime):
    from core.taskmodel import StateDelta

    schema = bike_domain.domain
    db = runtime.build_db(StateDelta())
    r = db.get("riders", "RDR-0002")
    db.mark()
    db.update("riders", "RDR-0002", {"name": "  " + r["name"].upper() + "  ", "balance": r["balance"] + 0.001})
    exp = Expected()
    assert compare_state(schema, db, exp) == ([], [])  # normalized text, money to the cent
    db.update("riders", "RDR-0002", {"status": "closed" if r["status"] != "closed" else "active"})
    reasons, mism = compare_state(schema, db, exp)
    assert [m["column"] for m in mism] == ["status"] and "riders[RDR-0002].status" in reasons[0]


@pytest.mark.parametrize("value,text,ok", [
    (12.5, "the cost is $12.50", True), (12.5, "cost 12.5 total", True), (12.5, "cost 112.50", False),
    (30, "30 days", True), (30, "300 days", False), ("RNT-0061", "rental RNT-0061 is open", True),
    ("flat_tire", "a flat tire", True), ("active", "it is inactive", False), ("2026-04-01", "until 2026-04-01.", True),
])
def test_value_mentioned(value, text, ok):
    assert value_mentioned(value, text) is ok


def test_oracle_message_states_every_required_value(generated):
    tasks, _ = generated
    for t in tasks:
        text = oracle_messages(t)[-1]["content"]
        assert all(value_mentioned(v.value, text) for v in t.ground_truth.communicate)
    assert isinstance(RequiredValue(value=1, label="x").value, int)


# ---------------------------------------------------------------------- CLI and store


def test_tasks_cli_generate_export_eval(tmp_path, capsys, bike_domain):
    from core.store import Workspace
    from scaleenv_tui.cli import main

    ws = Workspace(tmp_path / "ws")
    ws.save_domain(bike_domain)
    w = str(tmp_path / "ws")
    assert main(["tasks", "generate", "bike_rental", "-n", "12", "--workspace", w, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    d = out["domains"][0]
    assert {"name", "attempted", "verified", "dropped", "with_distractors", "refusals", "max_chain", "seconds"} <= set(d)
    assert d["verified"] == 12
    tasks = ws.load_tasks("bike_rental")
    ws.set_review(tasks[0].id, "approved", "looks right")
    assert ws.load_tasks("bike_rental")[0].review.status == "approved"
    assert main(["domains", "--workspace", w, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["domains"][0]
    assert (listed["tasks"], listed["approved"], listed["pending"]) == (12, 1, 11)
    dest = tmp_path / "out.jsonl"
    assert main(["tasks", "export", "bike_rental", "--out", str(dest), "--workspace", w]) == 0
    lines = dest.read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["id"] == tasks[0].id
    capsys.readouterr()
    assert main(["eval", "--agent", "oracle", "--workspace", w, "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["tasks"] == 12 and res["pass_rate"] == 1.0
    assert main(["eval", "nope", "--workspace", w]) == 2
    assert "no domain 'nope'" in capsys.readouterr().err


def test_state_hash_is_canonical_and_the_diff_is_readable(bike_domain, runtime):
    from core.db import diff_states
    from core.taskmodel import StateDelta

    a, b = runtime.build_db(StateDelta()), runtime.build_db(StateDelta())
    start = a.state_hash()
    assert b.state_hash() == start
    new = "closed" if a.get("riders", "RDR-0001")["status"] != "closed" else "active"
    bike = "repair" if a.get("bikes", "BK-0001")["status"] != "repair" else "available"
    # the same end state reached in another order, and through a row that came and went
    a.update("riders", "RDR-0001", {"status": new})
    a.update("bikes", "BK-0001", {"status": bike})
    b.update("bikes", "BK-0001", {"status": bike})
    b.insert("payments", {"rider_id": "RDR-0002", "amount": 5.0, "kind": "top_up", "created_at": "2026-03-02T09:00:00"})
    b.delete("payments", b.keys("payments")[-1])
    b.update("riders", "RDR-0001", {"status": new})
    assert a.state_hash() == b.state_hash() != start
    # rows stored in another physical order hash the same
    c = runtime.build_db(StateDelta())
    rows = c.select("stations")
    for r in rows:
        c.delete("stations", r["station_id"])
    for r in reversed(rows):
        c.insert("stations", r)
    assert c.state_hash() == start
    before = runtime.build_db(StateDelta()).dump()
    d = diff_states(before, a.dump(), bike_domain.domain)
    assert d["riders"]["updated"][0]["key"] == "RDR-0001"
    assert d["riders"]["updated"][0]["changes"]["status"][1] == new
    assert set(d) == {"riders", "bikes"}


MINI = """
domain: mini
tables:
  customers:
    rows: 2
    columns:
      customer_id: id CUS
      name: name
  orders:
    rows: 1
    columns:
      order_id: id ORD
      customer_id: ref customers
      note: text
  lines:
    rows: 1
    columns:
      line_id: id LIN
      order_id: ref orders
      qty: int 1..9
"""


def test_identical_new_rows_pair_whichever_way_the_references_need():
    from core.blueprint import parse_blueprint
    from core.db import DomainDB
    from core.reward import expected_from
    from core.seed import RowFactory

    bp = parse_blueprint(MINI, "mini.yaml")
    rows = RowFactory(bp.schema, 0).seed_rows()

    def fresh():
        db = DomainDB(bp.schema)
        db.load(rows)
        db.mark()
        return db

    def make(db, qty_first, qty_second, swap=False):
        a = db.insert("orders", {"customer_id": "CUS-0001", "note": "gift"})["order_id"]
        b = db.insert("orders", {"customer_id": "CUS-0001", "note": "gift"})["order_id"]
        first, second = (b, a) if swap else (a, b)
        db.insert("lines", {"order_id": first, "qty": qty_first})
        db.insert("lines", {"order_id": second, "qty": qty_second})

    gold = fresh()
    make(gold, 1, 2)
    exp = expected_from(gold.before, gold)
    agent = fresh()
    make(agent, 1, 2, swap=True)  # the same state up to which new order is which
    assert compare_state(bp.schema, agent, exp) == ([], [])
    wrong = fresh()
    make(wrong, 1, 3)
    reasons, mism = compare_state(bp.schema, wrong, exp)
    assert mism and any("lines" in r for r in reasons)


def test_a_regenerated_task_with_the_same_id_gets_its_own_initial_state(generated, runtime):
    tasks, _ = generated
    t = tasks[0]
    other = t.model_copy(deep=True)
    seed_row = runtime.build_db(type(t.initial)()).get("riders", "RDR-0003")
    other.initial = type(t.initial)(upsert={**t.initial.upsert, "riders": [
        *[r for r in t.initial.upsert.get("riders", []) if r["rider_id"] != "RDR-0003"],
        {**seed_row, "name": "Someone Else Entirely"}]}, delete=t.initial.delete)
    env = Environment(runtime, t)
    assert env.db.get("riders", "RDR-0003")["name"] != "Someone Else Entirely"
    env.reset(other)
    assert env.db.get("riders", "RDR-0003")["name"] == "Someone Else Entirely"
    env.reset(t)
    assert env.db.get("riders", "RDR-0003")["name"] != "Someone Else Entirely"


def test_export_errors_are_messages_and_damaged_records_are_named(tmp_path, capsys, bike_domain):
    import sqlalchemy as sa

    from core.store import Workspace, tasks_t
    from scaleenv_tui.cli import main

    ws = Workspace(tmp_path / "ws")
    ws.save_domain(bike_domain)
    w = str(tmp_path / "ws")
    assert main(["tasks", "generate", "bike_rental", "-n", "2", "--workspace", w]) == 0
    capsys.readouterr()
    assert main(["tasks", "export", "bike_rental", "--out", str(tmp_path), "--workspace", w]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp"))
    with ws.engine.begin() as c:
        c.execute(sa.update(tasks_t).values(task_json="{not json"))
    assert main(["eval", "--workspace", w]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "Traceback" not in err
