"""The runtime (core/runtime/env.py): DomainRuntime, Environment and EnvBatch as the README's trainer API promises.

States are read back with plain SQL on a second connection (the ``sql`` fixture), not only
through ``env.diff()``, which reads the undo log and so cannot see a write the log missed.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from core.data.models import Implementation, ToolRecord
from core.data.taskmodel import GroundTruth, Scenario, StateDelta, Task
from core.evaluation.reward import Expected
from core.runtime.env import DomainRuntime, EnvBatch, Environment, apply_delta, delta_between
from core.tasks.generator import TaskGenerator, oracle_messages

# riders of the seed state (bike_rental, seed 0) in each status
ACTIVE, CLOSED, SUSPENDED = "RDR-0005", "RDR-0001", "RDR-0002"

def make_task(task_id: str = "bike_rental-x-00001", initial: StateDelta | None = None,
              instruction: str = "Please top up my balance.") -> Task:
    """A hand-made task: only its initial state and first message matter to reset and step."""
    return Task(id=task_id, domain="bike_rental", chain=[], initial=initial or StateDelta(),
                scenario=Scenario(persona="a rider", goal="top up", instruction=instruction),
                ground_truth=GroundTruth(final_hash="", expected=Expected(), communicate=[]))


def call(tool: str, /, **arguments) -> dict:
    return {"name": tool, "arguments": arguments}


# Runtimes are cheap (tens of milliseconds), so each test builds its own: then every test that
# relies on what DomainRuntime.__init__ does also runs it (mutation testing attributes code to tests).
@pytest.fixture
def runtime(bike_domain):
    return DomainRuntime(bike_domain)


@pytest.fixture(scope="module")
def tasks(bike_domain):
    tasks, _ = TaskGenerator(bike_domain, DomainRuntime(bike_domain), seed=3).generate(6)
    return tasks


@pytest.fixture
def env(runtime):
    e = Environment(runtime, make_task())
    yield e
    e.close()


def rider(env_or_db, key: str = "RDR-0001") -> dict:
    db = getattr(env_or_db, "db", env_or_db)
    return db.get("riders", key)


# ---------------------------------------------------------------- reset


def test_reset_gives_the_policy_every_passed_tool_and_the_first_message(bike_domain, runtime):
    task = make_task(instruction="Hi, I am Ada.")
    obs = Environment(runtime).reset(task)
    assert set(obs) == {"policy", "tools", "user"}
    # the policy the agent reads starts with the domain's date (rules like "overdue" depend on it)
    assert obs["policy"].startswith(f"Today is Monday, 2 March 2026 (2026-03-02); the time is 09:00.\n\n"
                                    f"{bike_domain.domain.policy.rstrip()}\n") and bike_domain.domain.policy
    # and the derived refusal rule: say it could not be done, with what blocks it
    assert "what stands in the way, with the value that blocks it" in obs["policy"]
    assert obs["user"] == "Hi, I am Ada."
    want = [{"type": "function", "function": {"name": r.spec.name, "description": r.spec.description,
                                              "parameters": r.spec.parameters}} for r in bike_domain.tools]
    assert all(r.status == "passed" for r in bike_domain.tools)
    assert obs["tools"] == want
    assert runtime.tool_schemas() is runtime.tool_schemas()  # built once
    assert runtime.name == "bike_rental" and runtime.domain is bike_domain and runtime.refused == {}


def test_the_first_reset_needs_a_task_and_evaluate_needs_a_reset(runtime):
    e = Environment(runtime)
    assert e.calls == [] and e.task is None
    with pytest.raises(ValueError, match=r"^evaluate\(\) before reset\(\)$"):
        e.evaluate([])
    with pytest.raises(ValueError, match=r"^reset\(\) needs a task the first time$"):
        e.reset()


def test_an_environment_made_with_a_task_is_ready(runtime, sql):
    task = make_task(initial=StateDelta(delete={"payments": ["PAY-0001"]}))
    e = Environment(runtime, task)
    assert e.task is task
    assert sql.row(e, "payments", "PAY-0001") is None
    assert e.step(call("get_rider", rider_id="RDR-0001"))["ok"]


def test_reset_after_writes_restores_the_rows_and_the_id_counters(env, sql):
    start = sql.state(env)
    first = env.step(call("register_rider", name="Ada Lovelace", email="ada@example.com", phone="555-000-0000"))
    env.step(call("top_up_balance", rider_id=ACTIVE, amount=50))
    env.step(call("suspend_rider", rider_id="RDR-0009"))
    assert sql.state(env) != start
    env.reset()  # the same task: a rollback
    assert sql.state(env) == start
    assert env.db.before == {} and env.diff() == {}
    again = env.step(call("register_rider", name="Ada Lovelace", email="ada@example.com", phone="555-000-0000"))
    assert again["result"]["rider_id"] == first["result"]["rider_id"]
    env.reset(env.task)  # passing the same task again is the same rollback
    assert sql.state(env) == start


def test_reset_to_another_task_loads_its_initial_state(runtime, sql):
    seed = runtime.build_db(StateDelta())
    ada = {**seed.get("riders", "RDR-0003"), "name": "Ada Lovelace"}
    t1 = make_task("bike_rental-x-00001")
    t2 = make_task("bike_rental-x-00002", StateDelta(upsert={"riders": [ada]}, delete={"passes": ["PSS-0002"]}))
    e = Environment(runtime, t1)
    e.step(call("top_up_balance", rider_id="RDR-0003", amount=10))
    e.reset(t2)
    assert sql.row(e, "riders", "RDR-0003") == ada
    assert sql.row(e, "passes", "PSS-0002") is None
    e.step(call("top_up_balance", rider_id="RDR-0003", amount=10))
    e.reset(t1)
    assert sql.state(e) == sql.state(seed)
    e.reset(t2)
    assert sql.row(e, "riders", "RDR-0003") == ada  # the write before was rolled back, not kept in the cache


def test_a_regenerated_task_with_the_same_id_gets_its_own_initial_state(runtime, sql):
    seed_row = runtime.build_db(StateDelta()).get("riders", "RDR-0003")
    old = make_task("bike_rental-x-00007", StateDelta(upsert={"riders": [{**seed_row, "balance": 1.0}]}))
    new = make_task("bike_rental-x-00007", StateDelta(upsert={"riders": [{**seed_row, "balance": 99.0}]}))
    assert old.state_key != new.state_key
    e = Environment(runtime, old)
    assert sql.row(e, "riders", "RDR-0003")["balance"] == 1.0
    e.reset(new)
    assert sql.row(e, "riders", "RDR-0003")["balance"] == 99.0
    e.reset(old)
    assert sql.row(e, "riders", "RDR-0003")["balance"] == 1.0


def test_calls_are_kept_for_the_episode_and_cleared_by_any_reset(runtime):
    t1, t2 = make_task("bike_rental-x-00001"), make_task("bike_rental-x-00002")
    e = Environment(runtime, t1)
    ok = e.step(call("get_rider", rider_id="RDR-0001"))
    bad = e.step({"name": "get_rider", "arguments": "{not json"})
    e.step({"arguments": {}})
    assert e.calls == [
        {"name": "get_rider", "arguments": {"rider_id": "RDR-0001"}, **ok},
        {"name": "get_rider", "arguments": "{not json", **bad},
        {"name": None, "arguments": {}, "ok": False,
         "error": {"kind": "invalid_call", "message": "a tool call needs a 'name'"}},
    ]
    e.reset()
    assert e.calls == []
    e.step(call("get_rider", rider_id="RDR-0001"))
    e.reset(t2)
    assert e.calls == []
    e.step(call("get_rider", rider_id="RDR-0001"))
    e.reset(t1)
    assert e.calls == []


# ---------------------------------------------------------------- step


def test_a_successful_call_returns_the_result_and_writes(env, sql):
    before = sql.row(env, "riders", ACTIVE)
    out = env.step(call("top_up_balance", rider_id=ACTIVE, amount=12.5))
    assert out == {"ok": True, "result": sql.row(env, "riders", ACTIVE)}
    assert out["result"]["balance"] == round(before["balance"] + 12.5, 2)
    payments = [r for r in sql.rows(env, "payments") if r["kind"] == "top_up" and r["amount"] == 12.5
                and r["rider_id"] == ACTIVE and r["created_at"] == "2026-03-02T09:00:00"]
    assert len(payments) == 1


def test_arguments_may_be_a_json_string(env):
    as_dict = env.step(call("get_rider", rider_id="RDR-0002"))
    as_text = env.step({"name": "get_rider", "arguments": json.dumps({"rider_id": "RDR-0002"})})
    assert as_text == as_dict and as_text["ok"]
    assert env.step({"name": "list_riders_by_status", "arguments": '  {"status": "active"}  '})["ok"]


@pytest.mark.parametrize("arguments,message", [
    ("{not json", r"^arguments are not valid JSON: Expecting property name enclosed in double quotes$"),
    ('{"rider_id": "RDR-0001"', r"^arguments are not valid JSON: Expecting ',' delimiter$"),
])
def test_arguments_that_are_not_json_are_an_invalid_argument(env, sql, arguments, message):
    state = sql.state(env)
    out = env.step({"name": "top_up_balance", "arguments": arguments})
    assert out["ok"] is False and out["error"]["kind"] == "invalid_argument"
    assert set(out["error"]) == {"kind", "message"}
    assert re.match(message, out["error"]["message"]), out["error"]["message"]
    assert sql.state(env) == state


@pytest.mark.parametrize("arguments,argument,message", [
    ({"rider_id": "RDR-0001", "amount": "ten"}, "amount", "argument 'amount' must be a number, got 'ten'"),
    ({"rider_id": "RDR-0001"}, "amount", "missing required argument 'amount'"),
    ({"rider_id": "RDR-0001", "amount": 2}, "amount", "argument 'amount' must be at least 5.0, got 2"),
    ({"rider_id": "RDR-0001", "amount": 10, "tip": 1}, "tip", "unknown argument 'tip' (expected: rider_id, amount)"),
    ({"rider_id": 7, "amount": 10}, "rider_id", "argument 'rider_id' must be a string, got 7"),
    ('{"rider_id": "RDR-0001", "amount": 300}', "amount", "argument 'amount' must be at most 200.0, got 300"),
    ("", "rider_id", "missing required argument 'rider_id'"),
])
def test_invalid_arguments_name_the_argument(env, sql, arguments, argument, message):
    state = sql.state(env)
    out = env.step({"name": "top_up_balance", "arguments": arguments})
    assert out == {"ok": False, "error": {"kind": "invalid_argument", "message": message, "argument": argument}}
    assert sql.state(env) == state


@pytest.mark.parametrize("arguments", ["[1, 2]", "42", "null"])
def test_arguments_must_be_an_object(env, arguments):
    out = env.step({"name": "get_rider", "arguments": arguments})
    kind = type(json.loads(arguments)).__name__
    assert out == {"ok": False, "error": {"kind": "invalid_argument",
                                          "message": f"arguments must be an object, got {kind}"}}


def test_unknown_tools_and_malformed_calls(env):
    assert env.step(call("teleport_bike", bike_id="BK-0001")) == {"ok": False, "error": {
        "kind": "unknown_tool", "message": "no tool named 'teleport_bike'; see the tool list"}}
    for bad in ({"arguments": {"rider_id": "RDR-0001"}}, {"name": 7}, ["get_rider"], "get_rider", None):
        assert env.step(bad) == {"ok": False, "error": {"kind": "invalid_call",
                                                        "message": "a tool call needs a 'name'"}}, bad
    assert env.step({"name": "get_rider"}) == {"ok": False, "error": {
        "kind": "invalid_argument", "message": "missing required argument 'rider_id'", "argument": "rider_id"}}


def test_a_failed_call_leaves_the_state_as_it_was(env, sql):
    balance = sql.row(env, "riders", ACTIVE)["balance"]
    env.step(call("top_up_balance", rider_id=ACTIVE, amount=20))  # an earlier write in the episode
    state = sql.state(env)
    h = env.state_hash()
    missing = env.step(call("top_up_balance", rider_id="RDR-9999", amount=20))
    assert missing == {"ok": False, "error": {"kind": "not_found", "message": "no riders record with id 'RDR-9999'"}}
    closed = env.step(call("top_up_balance", rider_id=CLOSED, amount=20))
    assert closed == {"ok": False, "error": {"kind": "precondition", "message": "the rider's account is closed",
                                             "observed": {"riders.status": "closed"}}}
    refused = env.step(call("suspend_rider", rider_id=SUSPENDED))
    assert refused == {"ok": False, "error": {"kind": "precondition", "message": "only active riders can be suspended",
                                              "observed": {"riders.status": "suspended"}}}
    assert sql.state(env) == state and env.state_hash() == h
    assert sql.row(env, "riders", ACTIVE)["balance"] == round(balance + 20, 2)  # the earlier write stays


def test_state_hash_and_diff_follow_the_episode(env, sql):
    h0 = env.state_hash()
    assert env.state_hash() == env.db.state_hash()
    old = sql.row(env, "riders", ACTIVE)
    out = env.step(call("top_up_balance", rider_id=ACTIVE, amount=10))
    assert env.state_hash() != h0
    d = env.diff()
    assert d["riders"] == {"inserted": [], "deleted": [], "updated": [
        {"key": ACTIVE, "changes": {"balance": [old["balance"], out["result"]["balance"]]}}]}
    assert [r["kind"] for r in d["payments"]["inserted"]] == ["top_up"] and not d["payments"]["updated"]
    assert set(d) == {"riders", "payments"}
    env.reset()
    assert env.state_hash() == h0 and env.diff() == {}


def test_diff_shows_a_deleted_row(runtime):
    e = Environment(runtime, make_task())
    row = e.db.get("payments", "PAY-0001")
    e.db.delete("payments", "PAY-0001")  # no sample tool deletes; the engine side still must diff it
    assert e.diff() == {"payments": {"inserted": [], "deleted": [row], "updated": []}}


# ---------------------------------------------------------------- which tools reach agents


@pytest.fixture
def lab(bike_domain):
    """bike_rental with one rejected tool, one tampered tool and three hand-written ones."""
    d = bike_domain.model_copy(deep=True)
    recs = {r.spec.name: r for r in d.tools}
    recs["get_bike"].status = "rejected"
    recs["get_bike"].reason = "a test failed"
    recs["move_bike"].implementation.source = "import os\nimport sys\n" + recs["move_bike"].implementation.source
    base = recs["top_up_balance"].spec

    def tool(name: str, body: str) -> ToolRecord:
        src = f"def {name}(db, ctx, rider_id, amount):\n" + "".join(f"    {ln}\n" for ln in body.splitlines())
        return ToolRecord(spec=base.model_copy(update={"name": name}), implementation=Implementation(tool=name, source=src))

    d.tools += [
        tool("spin", "db.update('riders', rider_id, {'balance': 0})\nwhile True:\n    pass"),
        tool("bad_write", "db.update('riders', rider_id, {'balance': 0})\ndb.update('riders', rider_id, {'status': 'vip'})"),
        tool("crash", "db.insert('payments', {'rider_id': rider_id, 'amount': amount, 'kind': 'top_up', "
                      "'created_at': ctx.now})\nreturn amount / 0"),
    ]
    return DomainRuntime(d, call_seconds=0.2)


def test_only_tools_that_passed_reach_agents(lab):
    e = Environment(lab, make_task())
    names = [t["function"]["name"] for t in e.reset()["tools"]]
    assert "get_bike" not in names and "get_bike" not in lab.tools
    assert "get_rider" in names and "spin" in names
    assert e.step(call("get_bike", bike_id="BK-0001")) == {"ok": False, "error": {
        "kind": "unknown_tool", "message": "no tool named 'get_bike'; see the tool list"}}
    assert lab.call(e.db, e.ctx, "get_bike", {"bike_id": "BK-0001"}).ok is False


def test_a_stored_tool_the_sandbox_refuses_is_left_out_and_listed(lab):
    allowed = "(allowed: collections, functools, itertools, json, math, statistics)"
    assert lab.refused == {"move_bike": f"line 1: import of 'os' is not allowed {allowed}; "
                                        f"line 2: import of 'sys' is not allowed {allowed}"}
    e = Environment(lab, make_task())
    assert "move_bike" not in [t["function"]["name"] for t in e.reset()["tools"]]
    assert e.step(call("move_bike", bike_id="BK-0001", station_id="STN-0001"))["error"]["kind"] == "unknown_tool"


@pytest.mark.parametrize("name,kind,message", [
    ("spin", "timeout", "time limit of 0.2 s exceeded"),
    ("bad_write", "internal", "the tool wrote invalid data: riders.status cannot be 'vip' (one of active, closed, suspended)"),
    ("crash", "internal", "the tool failed: ZeroDivisionError: division by zero"),
])
def test_a_tool_that_fails_midway_is_rolled_back(lab, sql, name, kind, message):
    e = Environment(lab, make_task())
    state = sql.state(e)
    out = e.step(call(name, rider_id="RDR-0001", amount=10))
    assert out["ok"] is False and out["error"]["kind"] == kind
    assert message in out["error"]["message"]
    assert sql.state(e) == state
    assert e.db.changes() == {}
    assert e.step(call("get_rider", rider_id="RDR-0001"))["ok"]  # the episode goes on


# ---------------------------------------------------------------- the snapshot cache


def test_initial_snapshots_are_cached_per_state_key(runtime):
    t = make_task("bike_rental-x-00011", StateDelta(delete={"payments": ["PAY-0003"]}))
    same = make_task("bike_rental-x-00011", StateDelta(delete={"payments": ["PAY-0003"]}))
    assert runtime.initial_snapshot(t) is runtime.initial_snapshot(t)
    assert runtime.initial_snapshot(same) is runtime.initial_snapshot(t)  # equal initial state, same key


def test_the_snapshot_cache_keeps_within_its_budget_dropping_the_oldest(bike_domain):
    probe = DomainRuntime(bike_domain)
    ts = [make_task(f"bike_rental-x-{i:05d}", StateDelta(delete={"payments": [f"PAY-{i:04d}"]})) for i in range(1, 5)]
    size = len(probe.initial_snapshot(ts[0]))
    assert all(len(probe.initial_snapshot(t)) == size for t in ts)
    rt = DomainRuntime(bike_domain, snapshot_budget=2 * size)  # room for exactly two
    a, b = rt.initial_snapshot(ts[0]), rt.initial_snapshot(ts[1])
    assert rt.initial_snapshot(ts[0]) is a and rt.initial_snapshot(ts[1]) is b
    c = rt.initial_snapshot(ts[2])  # a third: the oldest goes
    assert rt.initial_snapshot(ts[1]) is b and rt.initial_snapshot(ts[2]) is c
    d = rt.initial_snapshot(ts[3])
    assert rt.initial_snapshot(ts[2]) is c and rt.initial_snapshot(ts[3]) is d
    assert rt.initial_snapshot(ts[1]) is not b  # it went when the fourth came
    assert rt.initial_snapshot(ts[1]) == b  # rebuilt the same


def test_a_snapshot_bigger_than_the_budget_is_still_kept_alone(bike_domain, sql):
    rt = DomainRuntime(bike_domain, snapshot_budget=1)
    t1, t2 = make_task("bike_rental-x-00001"), make_task("bike_rental-x-00002", StateDelta(delete={"bikes": ["BK-0001"]}))
    s1 = rt.initial_snapshot(t1)
    assert rt.initial_snapshot(t1) is s1
    rt.initial_snapshot(t2)
    assert rt.initial_snapshot(t1) is not s1
    e = Environment(rt, t2)
    assert sql.row(e, "bikes", "BK-0001") is None
    e.reset(t1)
    assert sql.row(e, "bikes", "BK-0001") is not None


# ---------------------------------------------------------------- initial states (deltas)


def test_a_delta_upserts_and_deletes_over_the_seed_and_moves_counters(runtime, sql):
    seed = runtime.build_db(StateDelta())
    planted = {**seed.get("riders", "RDR-0001"), "rider_id": "RDR-0100", "email": "planted@example.com"}
    changed = {**seed.get("riders", "RDR-0002"), "status": "closed"}
    delta = StateDelta(upsert={"riders": [planted, changed]}, delete={"payments": ["PAY-0001", "PAY-0002"]})
    db = runtime.build_db(delta)
    assert db.before == {} and db.changes() == {}  # the delta is the starting point, not a change
    assert sql.row(db, "riders", "RDR-0100") == planted
    assert sql.row(db, "riders", "RDR-0002") == changed
    assert sql.row(db, "payments", "PAY-0001") is None and sql.row(db, "payments", "PAY-0002") is None
    assert len(sql.rows(db, "payments")) == len(sql.rows(seed, "payments")) - 2
    assert db.insert("riders", {**planted, "rider_id": None})["rider_id"] == "RDR-0101"
    assert db.insert("payments", {k: v for k, v in seed.get("payments", "PAY-0003").items()
                                  if k != "payment_id"})["payment_id"] == "PAY-0051"  # deleting does not move ids


@pytest.mark.parametrize("ids", [["RDR-0002"], ["VIP-ADA"], ["vip"], ["RDR-0002", "vip"]])
def test_a_delta_with_ids_below_the_seed_or_without_numbers_keeps_the_counters(runtime, sql, ids):
    seed = runtime.build_db(StateDelta())
    rows = [{**seed.get("riders", "RDR-0002"), "rider_id": k, "email": f"{k}@example.com"} for k in ids]
    db = runtime.build_db(StateDelta(upsert={"riders": rows}))
    assert [sql.row(db, "riders", k) for k in ids] == rows
    assert db.insert("riders", {**rows[0], "rider_id": None})["rider_id"] == "RDR-0041"


def test_a_delta_moves_the_counter_of_a_prefix_with_a_dash():
    from core.data.db import DomainDB
    from core.spec.blueprint import parse_blueprint

    schema = parse_blueprint("domain: eu\ntables:\n  customers:\n    columns:\n      customer_id: id CUS-EU\n"
                             "      name: name\n", "eu.yaml").schema
    db = DomainDB(schema)
    apply_delta(db, StateDelta(upsert={"customers": [{"customer_id": "CUS-EU-0042", "name": "Ada"}]}))
    assert db.insert("customers", {"name": "Bob"})["customer_id"] == "CUS-EU-0043"


def test_delta_between_rebuilds_the_later_state(runtime, sql):
    e = Environment(runtime, make_task())
    start = e.db.dump()
    e.step(call("register_rider", name="Ada Lovelace", email="ada@example.com", phone="555-000-0000"))
    e.step(call("top_up_balance", rider_id="RDR-0005", amount=30))
    e.db.delete("payments", "PAY-0007")
    after = e.db.dump()
    delta = delta_between(runtime.schema, start, after)
    assert delta.delete == {"payments": ["PAY-0007"]}
    assert {t: [r[runtime.schema.table(t).primary_key] for r in rows] for t, rows in delta.upsert.items()} == {
        "riders": ["RDR-0005", "RDR-0041"], "payments": ["PAY-0051"]}
    rebuilt = runtime.build_db(delta)
    assert sql.state(rebuilt) == sql.state(e)
    assert delta_between(runtime.schema, start, start) == StateDelta()
    # a table left out has no rows on that side
    rows = start["stations"]
    assert delta_between(runtime.schema, {}, {"stations": rows}) == StateDelta(upsert={"stations": rows})
    keys = [r["station_id"] for r in rows]
    assert delta_between(runtime.schema, {"stations": rows}, {}) == StateDelta(delete={"stations": keys})


def test_apply_delta_marks_the_database(runtime):
    db = runtime.build_db(StateDelta())
    db.update("riders", "RDR-0001", {"status": "closed"})
    apply_delta(db, StateDelta())
    assert db.before == {}


# ---------------------------------------------------------------- evaluate, with generated tasks


def test_the_chain_scores_one_and_reaches_the_recorded_final_state(runtime, tasks):
    e = Environment(runtime)
    for t in tasks:
        e.reset(t)
        outs = [e.step({"name": s.tool, "arguments": s.args}) for s in t.chain]
        assert [o["ok"] for o in outs] == [s.expect == "ok" for s in t.chain], t.id
        assert e.state_hash() == t.ground_truth.final_hash
        assert e.evaluate(oracle_messages(t)).reward == 1.0, t.id
        e.reset()
        assert e.evaluate(oracle_messages(t)[:1]).reward == 0.0, t.id  # doing nothing does not score


def test_only_assistant_messages_count_as_telling_the_user(runtime, tasks):
    t = next(t for t in tasks if not t.is_refusal)
    e = Environment(runtime, t)
    for s in t.chain:
        e.step({"name": s.tool, "arguments": s.args})
    said = oracle_messages(t)
    r = e.evaluate([{**m, "role": "user"} for m in said])
    assert r.reward == 0.0 and r.state_ok and not r.communicated_ok
    assert e.evaluate(said).reward == 1.0


def test_evaluate_reads_the_current_state(runtime, tasks):
    t = next(t for t in tasks if not t.is_refusal and t.ground_truth.expected.updated)
    e = Environment(runtime, t)
    for s in t.chain:
        e.step({"name": s.tool, "arguments": s.args})
    table, rows = next(iter(t.ground_truth.expected.updated.items()))
    key = next(iter(rows))
    pk = runtime.schema.table(table).primary_key
    e.db.delete(table, key)
    r = e.evaluate(oracle_messages(t))
    assert r.reward == 0.0 and not r.state_ok
    assert any(key in reason for reason in r.reasons), (pk, r.reasons)


# ---------------------------------------------------------------- EnvBatch


def test_batch_reset_step_and_evaluate(runtime, tasks):
    batch = EnvBatch([Environment(runtime) for _ in range(3)])
    obs = batch.reset(tasks[:3])
    assert [o["user"] for o in obs] == [t.scenario.instruction for t in tasks[:3]]
    first = [{"name": t.chain[0].tool, "arguments": t.chain[0].args} for t in tasks[:3]]
    outs = batch.step([first[0], None, first[2]])
    assert outs[1] is None and outs[0]["ok"] and outs[2]["ok"]
    assert [len(e.calls) for e in batch.envs] == [1, 0, 1]
    rewards = batch.evaluate([[m] for m in ([{"role": "assistant", "content": "done"}] * 3)])
    assert [r.reward for r in rewards] == [0.0, 0.0, 0.0]
    batch.reset()  # no tasks: each environment rolls back its own
    assert [e.task for e in batch.envs] == list(tasks[:3]) and all(e.calls == [] for e in batch.envs)
    for wrong in (lambda: batch.step([first[0]]), lambda: batch.reset(tasks[:2]), lambda: batch.evaluate([[]])):
        with pytest.raises(ValueError, match=r"zip\(\) argument 2 is (shorter|longer) than argument 1"):
            wrong()


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")  # the slots made before zip() noticed
def test_batch_astep_needs_one_call_per_environment(runtime):
    batch = EnvBatch([Environment(runtime, make_task()) for _ in range(3)])
    with pytest.raises(ValueError, match=r"zip\(\) argument 2 is longer than argument 1"):
        asyncio.run(batch.astep([None] * 4))


def test_batch_astep_runs_each_environment_in_a_thread_and_skips_none(runtime, tasks):
    envs = [Environment(runtime) for _ in range(4)]
    batch = EnvBatch(envs)
    batch.reset(tasks[:4])
    calls = [{"name": t.chain[0].tool, "arguments": t.chain[0].args} for t in tasks[:4]]
    sync = [Environment(runtime, t).step(c) for t, c in zip(tasks[:4], calls, strict=True)]
    outs = asyncio.run(batch.astep([calls[0], None, calls[2], None]))
    assert outs == [sync[0], None, sync[2], None]
    assert [len(e.calls) for e in envs] == [1, 0, 1, 0]
    batch.reset(tasks[:4])  # a first step may be a write (close a station): run it on a fresh state
    outs = asyncio.run(batch.astep(calls))
    assert [o["ok"] for o in outs] == [True] * 4
    envs[1].reset(tasks[1])
    assert asyncio.run(envs[1].astep(calls[1])) == Environment(runtime, tasks[1]).step(calls[1])


# ---------------------------------------------------------------- bugs found


def test_a_huge_number_is_an_invalid_argument_not_an_exception(env, sql):
    state = sql.state(env)
    out = env.step({"name": "top_up_balance", "arguments": '{"rider_id": "RDR-0001", "amount": 1' + "0" * 400 + "}"})
    assert out["ok"] is False and out["error"]["kind"] == "invalid_argument"
    assert out["error"]["argument"] == "amount"
    assert sql.state(env) == state


# ---------------------------------------------------------------- step and evaluate never raise


@pytest.mark.parametrize("arguments, says", [
    ('{"rider_id": "RDR-0001", "amount": 1' + "0" * 5000 + "}", "holding a number too large"),  # over int digits
    ("[" * 5000, "nested too deeply"),
    ('{"a": ' * 3000 + "1" + "}" * 3000, "nested too deeply"),
])
def test_json_no_parser_can_take_is_an_invalid_argument_and_is_recorded(env, sql, arguments, says):
    state = sql.state(env)
    out = env.step({"name": "top_up_balance", "arguments": arguments})
    assert out == {"ok": False, "error": {"kind": "invalid_argument", "message": f"arguments are not valid JSON: {says}"}}
    assert env.calls[-1]["ok"] is False and env.calls[-1]["name"] == "top_up_balance"
    assert sql.state(env) == state


def test_a_lone_surrogate_is_an_invalid_argument_not_an_internal_error(env, sql):
    state = sql.state(env)
    out = env.step({"name": "top_up_balance", "arguments": {"rider_id": "RDR-\ud800", "amount": 5}})
    assert out["error"] == {"kind": "invalid_argument", "argument": "rider_id",
                            "message": "argument 'rider_id' is not valid Unicode text"}
    assert sql.state(env) == state


def test_an_enum_argument_of_any_length_is_refused_briefly(env):
    out = env.step({"name": "report_fault", "arguments": {"bike_id": "BK-0001", "rider_id": "RDR-0001",
                                                          "issue": "x" * 20_000, "note": "n"}})
    assert out["error"]["kind"] == "invalid_argument" and out["error"]["argument"] == "issue"
    assert len(out["error"]["message"]) < 300  # the message does not quote 20,000 characters


def test_evaluate_skips_what_is_not_a_message(env):
    said = {"role": "assistant", "content": "hello"}
    assert env.evaluate([None, "text", 3, said, ["x"]]) == env.evaluate([said])
