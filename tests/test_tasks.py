"""Phase 2: verified tasks, the environment API, rewards, agents, and the tasks/eval CLI."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.agents.agents import RandomAgent, run_episode
from core.evaluation.reward import Expected, compare_state, value_mentioned
from core.runtime.env import DomainRuntime, EnvBatch, Environment
from core.tasks.generator import TaskGenerator, oracle_messages


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
    assert any("extended" in t.expansion for t in tasks)


def replay(env, task, steps=None):
    env.reset(task)
    return [env.step({"name": s.tool, "arguments": s.args}) for s in (task.chain if steps is None else steps)]


def test_leaving_out_one_required_value_scores_zero(generated, runtime):
    tasks, _ = generated
    several = [t for t in tasks if len(t.ground_truth.communicate) >= 2]
    assert len(several) >= 5
    env = Environment(runtime)
    for t in several:
        replay(env, t)
        said = oracle_messages(t)[-1]["content"].split("; ")[0]  # the head and the first value only
        r = env.evaluate([{"role": "assistant", "content": said}])
        assert (r.reward, r.state_ok, r.communicated_ok) == (0.0, True, False), t.id
        assert [v.value for v in r.missing_values] == [v.value for v in t.ground_truth.communicate[1:]], t.id


def test_values_in_tool_or_user_messages_are_not_told_to_the_user(generated, runtime):
    tasks, _ = generated
    env = Environment(runtime)
    for t in tasks:
        replay(env, t)
        values = oracle_messages(t)[-1]["content"]
        r = env.evaluate([{"role": "user", "content": values}, {"role": "tool", "name": t.chain[-1].tool,
                          "content": values}, {"role": "assistant", "content": "Done."}])
        assert r.reward == 0.0 and not r.communicated_ok, t.id


def last_step_writes(env, t):
    replay(env, t, t.chain[:-1])
    return env.state_hash() != t.ground_truth.final_hash


def test_stopping_before_the_last_write_scores_zero(generated, runtime):
    tasks, _ = generated
    env = Environment(runtime)
    cut = [t for t in tasks if last_step_writes(env, t)]
    assert len(cut) >= 10
    for t in cut:
        replay(env, t, t.chain[:-1])
        r = env.evaluate(oracle_messages(t))  # says every value, but the last goal never ran
        assert r.reward == 0.0 and not r.state_ok and r.reasons, t.id


def test_acting_on_a_look_alike_record_scores_zero(generated, runtime, bike_domain):
    """The last write goal run on another new row of its record's table (a distractor) instead."""
    tasks, _ = generated
    schema = bike_domain.domain
    seed = {tb: {r[schema.table(tb).primary_key] for r in rows} for tb, rows in bike_domain.rows.items()}
    env = Environment(runtime)
    cases = []
    for t in [t for t in tasks if t.has_distractors and last_step_writes(env, t)]:
        last = t.chain[-1]
        for i in t.identifications:
            pk = schema.table(i.table).primary_key
            others = [r[pk] for r in t.initial.upsert.get(i.table, []) if r[pk] not in seed[i.table] | {i.target}]
            cases += [(t, p, others[0]) for p, v in last.args.items()
                      if v == i.target and last.sources[p] == "lookup" and others]
    assert len(cases) >= 5
    for t, p, wrong in cases:
        last = t.chain[-1]
        replay(env, t, [*t.chain[:-1], last.model_copy(update={"args": {**last.args, p: wrong}})])
        assert env.evaluate(oracle_messages(t)).reward == 0.0, (t.id, p, wrong)


def test_random_agent_rarely_scores(generated, runtime):
    tasks, _ = generated
    env = Environment(runtime)
    wins = sum(run_episode(env, t, RandomAgent(seed=i)).reward.reward for i, t in enumerate(tasks))
    assert wins <= 2


def test_naming_every_guessable_value_never_scores(generated, runtime):
    from core.agents.agents import GuesserAgent

    tasks, _ = generated
    env = Environment(runtime)
    assert sum(run_episode(env, t, GuesserAgent(runtime.schema)).reward.reward for t in tasks) == 0


def test_a_refused_goal_changes_nothing_and_shows_what_blocks_it(generated, runtime):
    tasks, _ = generated
    refusals = [t for t in tasks if t.is_refusal]
    assert len(refusals) >= 6
    env = Environment(runtime)
    for t in refusals:
        replay(env, t, t.chain[:-1])
        before = env.state_hash()
        out = env.step({"name": t.chain[-1].tool, "arguments": t.chain[-1].args})
        assert out["error"]["kind"] == "precondition", t.id
        assert env.state_hash() == before == t.ground_truth.final_hash, t.id
        blocker = [v for v in t.ground_truth.communicate if v.why == "what blocks the request"]
        assert [v.value for v in blocker] == [out["error"]["observed"][blocker[0].label]], t.id


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
    t = next(t for t in tasks if t.ground_truth.diff)
    env = Environment(runtime, t)
    start = env.state_hash()
    for s in t.chain:
        env.step({"name": s.tool, "arguments": s.args})
    assert env.state_hash() != start
    assert env.diff()
    assert [c["name"] for c in env.calls] == [s.tool for s in t.chain]  # the episode's calls
    env.reset()
    assert env.state_hash() == start
    assert env.diff() == {} and env.calls == []


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
    from core.data.taskmodel import StateDelta

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
    from core.data.taskmodel import StateDelta

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


# ---------------------------------------------------------------------- CLI and store


def test_tasks_cli_generate_export_eval(tmp_path, capsys, bike_domain):
    from core.data.store import Workspace
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
    from core.data.db import diff_states
    from core.data.taskmodel import StateDelta

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
    from core.data.db import DomainDB
    from core.data.seed import RowFactory
    from core.evaluation.reward import expected_from
    from core.spec.blueprint import parse_blueprint

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

    from core.data.store import Workspace, tasks_t
    from scaleenv_tui.cli import main

    ws = Workspace(tmp_path / "ws")
    ws.save_domain(bike_domain)
    w = str(tmp_path / "ws")
    assert main(["tasks", "generate", "bike_rental", "-n", "2", "--workspace", w]) == 0
    capsys.readouterr()
    assert main(["tasks", "export", "bike_rental", "--out", str(tmp_path), "--workspace", w]) == 2
    assert "is a directory" in capsys.readouterr().err
    with ws.engine.begin() as c:
        c.execute(sa.update(tasks_t).values(task_json="{not json"))
    assert main(["eval", "--workspace", w]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "Traceback" not in err


def test_a_failed_export_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, capsys, bike_domain,
                                                                          monkeypatch):
    import errno

    from core.data.store import Workspace
    from core.data.taskmodel import Task
    from scaleenv_tui.cli import main

    ws = Workspace(tmp_path / "ws")
    ws.save_domain(bike_domain)
    w = str(tmp_path / "ws")
    assert main(["tasks", "generate", "bike_rental", "-n", "3", "--workspace", w]) == 0
    out = tmp_path / "out" / "bike_rental.jsonl"
    out.parent.mkdir()
    out.write_text("the previous export\n")
    written = []
    dump = Task.model_dump_json

    def disk_full(self, **kw):  # the second task cannot be written: the disk is full midway
        written.append(self.id)
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return dump(self, **kw)

    monkeypatch.setattr(Task, "model_dump_json", disk_full)
    capsys.readouterr()
    assert main(["tasks", "export", "bike_rental", "--out", str(out), "--workspace", w]) == 2
    assert len(written) == 2  # it failed midway, after one task was written
    err = capsys.readouterr().err
    assert err.startswith("scaleenv: error: cannot write") and "No space left on device" in err
    assert out.read_text() == "the previous export\n"
    assert [p.name for p in out.parent.iterdir()] == ["bike_rental.jsonl"]  # no partial file beside it
    monkeypatch.undo()
    assert main(["tasks", "export", "bike_rental", "--out", str(out), "--workspace", w]) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [t.id for t in ws.load_tasks("bike_rental")]
    assert [p.name for p in out.parent.iterdir()] == ["bike_rental.jsonl"]
