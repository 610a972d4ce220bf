"""The documented task invariants (docs/tasks.md), re-checked from outside the generator.

All 16 sample domains are synthesized and given tasks once, through the CLI in a subprocess,
into a module-scoped workspace. The checks below read the stored tasks back and verify them with
their own means (plain SQL on the initial state, a replay in a fresh ``Environment``), never with
the generator's own helpers (``_identified``, ``_guessable``...).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.data.models import Domain
from core.data.taskmodel import Task
from core.evaluation.reward import value_mentioned
from core.runtime.context import ToolContext
from core.runtime.env import DomainRuntime, Environment
from core.tasks.generator import TaskGenerator, oracle_messages

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = sorted(p.stem for p in (ROOT / "sample_domains").glob("*.yaml"))
N = 12
MAX_CHAIN = 6  # the CLI's default --max-chain


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real CLI, run from this tree (so a copy of the project tests its own ``core``)."""
    done = subprocess.run([sys.executable, "-m", "scaleenv_tui.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


@dataclass
class Generated:
    domain: Domain
    runtime: DomainRuntime
    tasks: list[Task]
    stats: dict[str, Any]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("invariants") / "ws"
    out = cli("synth", "--all", "--workspace", str(w), "--json")
    (w.parent / "synth.json").write_text(out.stdout)
    return w


@pytest.fixture(scope="module")
def gen(workspace) -> dict[str, Generated]:
    from core.data.store import Workspace

    out = cli("tasks", "generate", "--all", "-n", str(N), "--workspace", str(workspace), "--json")
    stats = {d["name"]: d for d in json.loads(out.stdout)["domains"]}
    ws = Workspace(workspace, create=False)
    got = {}
    for name in ws.domain_names():
        domain = ws.load_domain(name)
        got[name] = Generated(domain, DomainRuntime(domain), ws.load_tasks(name), stats[name])
    return got


# ---------------------------------------------------------------------- helpers (independent of core.tasks.generator)


def plain_sql(runtime: DomainRuntime, task: Task) -> sqlite3.Connection:
    """The task's initial state as a bare sqlite3 connection."""
    conn = sqlite3.connect(":memory:")
    conn.deserialize(runtime.build_db(task.initial).snapshot())
    return conn


def primary_key(conn: sqlite3.Connection, table: str) -> str:
    cols = [r for r in conn.execute(f'PRAGMA table_info("{table}")') if r[5]]
    assert len(cols) == 1, f"{table} has no single primary key"
    return cols[0][1]


def select_keys(conn: sqlite3.Connection, table: str, filters: dict[str, Any]) -> list[Any]:
    pk = primary_key(conn, table)
    where = " AND ".join(f'"{c}" IS ?' for c in filters) or "1"
    sql = f'SELECT "{pk}" FROM "{table}" WHERE {where} ORDER BY "{pk}"'
    return [r[0] for r in conn.execute(sql, list(filters.values()))]


def signature(task: Task) -> str:
    return json.dumps([[s.tool, s.args] for s in task.chain], sort_keys=True, default=str)


def contains(obj: Any, value: Any) -> bool:
    """Whether ``value`` occurs anywhere in a tool result (nested dicts and lists)."""
    if isinstance(obj, dict):
        return any(contains(v, value) for v in obj.values())
    if isinstance(obj, list):
        return any(contains(v, value) for v in obj)
    return obj == value and type(obj) is type(value)


def sourced(src: str, value: Any, found: list[Any], prev_goal: Any, task: Task) -> bool:
    """Whether a goal argument comes from where its ``sources`` entry says (docs: ChainStep)."""
    if src == "lookup":  # returned by an earlier lookup
        return any(contains(r, value) for r in found)
    if src == "step":  # the output of the previous goal
        return contains(prev_goal, value)
    return value_mentioned(value, task.scenario.instruction)  # "user": stated in the instruction


def normalized(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def all_tasks(gen: dict[str, Generated]) -> list[tuple[Generated, Task]]:
    return [(g, t) for g in gen.values() for t in g.tasks]


# ---------------------------------------------------------------------- the run itself


def test_the_sample_domains_are_what_the_readme_says(workspace):
    """README: 16 blueprints, "7–9 tables and 37–42 tools each, and every tool passes its procedural tests"."""
    domains = json.loads((workspace.parent / "synth.json").read_text())["domains"]
    assert sorted(d["name"] for d in domains) == DOMAINS and len(DOMAINS) == 16
    for d in domains:
        assert 7 <= d["tables"] <= 9 and 37 <= d["tools"] <= 42, d["name"]
        assert (d["tools_passed"], d["tests_passed"]) == (d["tools"], d["tests"]), d["name"]
        assert d["edges"] > 0 and d["density"] == pytest.approx(d["edges"] / (d["tools"] * (d["tools"] - 1)), abs=5e-4)


def test_every_sample_domain_gets_the_tasks_asked_for(gen):
    assert sorted(gen) == DOMAINS
    for name, g in gen.items():
        assert len(g.tasks) == g.stats["verified"] == N, name
        assert g.stats["attempted"] == g.stats["verified"] + g.stats["dropped"] <= 20 * N
        # the printed summary agrees with what was stored
        assert g.stats["refusals"] == sum(t.is_refusal for t in g.tasks)
        assert g.stats["with_distractors"] == sum(t.has_distractors for t in g.tasks)
        assert g.stats["max_chain"] == max(len(t.chain) for t in g.tasks)
        lengths: dict[str, int] = {}
        for t in g.tasks:
            lengths[str(len(t.chain))] = lengths.get(str(len(t.chain)), 0) + 1
        assert g.stats["chain_lengths"] == lengths


@pytest.mark.parametrize("name", DOMAINS)
def test_task_ids_are_domain_seed_attempt_number(gen, name):
    g = gen[name]
    numbers = []
    for t in g.tasks:
        m = re.fullmatch(re.escape(name) + r"-0-(\d{5})", t.id)
        assert m, t.id
        numbers.append(int(m.group(1)))
        assert t.domain == name and t.provenance.seed == 0 and t.provenance.parents == [name]
    # the attempt number: increasing, from 1, never past the attempts made
    assert numbers == sorted(set(numbers)) and numbers[0] >= 1 and numbers[-1] <= g.stats["attempted"]


@pytest.mark.parametrize("name", DOMAINS)
def test_identifications_select_exactly_their_target_in_plain_sql(gen, name):
    g = gen[name]
    checked = 0
    for t in g.tasks:
        conn = plain_sql(g.runtime, t)
        for ident in t.identifications:
            assert select_keys(conn, ident.table, ident.filters) == [ident.target], (t.id, ident)
            checked += 1
        conn.close()
    assert checked >= len(g.tasks) // 2  # the check is not vacuous


@pytest.mark.parametrize("name", DOMAINS)
def test_no_two_tasks_share_a_chain(gen, name):
    sigs = [signature(t) for t in gen[name].tasks]
    assert len(set(sigs)) == len(sigs)


@pytest.mark.parametrize("name", DOMAINS)
def test_chain_shape(gen, name):
    for t in gen[name].tasks:
        roles = [s.role for s in t.chain]
        assert 1 <= len(t.chain) <= MAX_CHAIN, t.id
        assert roles[-1] == "goal", t.id  # every lookup serves a goal after it
        lookups = [(s.tool, json.dumps(s.args, sort_keys=True)) for s in t.chain if s.role == "lookup"]
        assert len(set(lookups)) == len(lookups), t.id  # each lookup once
        assert all(s.sources == {} for s in t.chain if s.role == "lookup"), t.id
        goals = [s for s in t.chain if s.role == "goal"]
        for s in goals:
            assert set(s.sources) == set(s.args), (t.id, s.tool)
            assert set(s.sources.values()) <= {"user", "lookup", "step"}, (t.id, s.tool)
        assert "step" not in goals[0].sources.values(), t.id  # nothing before the first goal
        # "precondition" only on the last goal of a refusal, and the outcome says so
        expects = [s.expect for s in t.chain]
        want = ["ok"] * (len(t.chain) - 1) + ["precondition" if t.is_refusal else "ok"]
        assert expects == want, t.id
        assert t.ground_truth.outcome == ("refused" if t.chain[-1].expect == "precondition" else "completed")
        assert ("refusal" in t.expansion) == t.is_refusal, t.id
        assert ("extended" in t.expansion) == (len(goals) > 1), t.id


@pytest.mark.parametrize("name", DOMAINS)
def test_replaying_the_chain_reproduces_the_ground_truth(gen, name):
    g = gen[name]
    env = Environment(g.runtime)
    for t in g.tasks:
        env.reset(t)
        found: list[Any] = []  # what the lookups returned so far
        prev_goal: Any = None
        for s in t.chain:
            out = env.step({"name": s.tool, "arguments": s.args})
            kind = "ok" if out["ok"] else out["error"]["kind"]
            assert kind == s.expect, (t.id, s.tool, out)
            unsourced = [(p, src, s.args[p]) for p, src in s.sources.items()
                         if s.args[p] is not None and not sourced(src, s.args[p], found, prev_goal, t)]
            assert not unsourced, (t.id, s.tool)
            if s.role == "lookup":
                found.append(out["result"])
            else:
                prev_goal = out["result"] if out["ok"] else out["error"]
        assert env.state_hash() == t.ground_truth.final_hash, t.id
        assert normalized(env.diff()) == normalized(t.ground_truth.diff), t.id
        if_refused = [out["error"].get("observed", {})] if t.is_refusal else []
        blockers = [v.value for v in t.ground_truth.communicate if v.why == "what blocks the request"]
        assert len(blockers) == len(if_refused), t.id  # a refusal shows the user one blocker
        assert all(any(b == o for o in obs.values()) for b, obs in zip(blockers, if_refused, strict=True)), t.id
    env.close()


@pytest.mark.parametrize("name", DOMAINS)
def test_oracle_scores_one_and_doing_nothing_scores_zero_after_the_round_trip(gen, name):
    """The generator checked this in its own process; here the task came back from the workspace."""
    g = gen[name]
    env = Environment(g.runtime)
    for t in g.tasks:
        env.reset(t)
        for s in t.chain:
            env.step({"name": s.tool, "arguments": s.args})
        r = env.evaluate(oracle_messages(t))
        assert (r.reward, r.reasons) == (1.0, []), t.id
        env.reset(t)
        head = "I could not do that." if t.is_refusal else "Done."
        nothing = env.evaluate([{"role": "user", "content": t.scenario.instruction},
                                {"role": "assistant", "content": head}])
        assert nothing.reward == 0.0 and nothing.reasons, t.id
    env.close()


@pytest.mark.parametrize("name", DOMAINS)
def test_the_instruction_states_the_facts_but_not_the_answers(gen, name):
    for t in gen[name].tasks:
        text = t.scenario.instruction
        assert t.ground_truth.communicate, t.id
        said = " ".join([text, *map(str, t.scenario.known.values())])
        customer = customer_table_of(g_schema := gen[name].domain.domain)
        identity = {c.name for c in customer.columns if c.type in ("name", "email")} if customer else set()
        for k, v in t.scenario.known.items():
            # what the first message leaves out is told when asked: who the user is, or which of
            # their records they mean ("one of my rentals")
            assert value_mentioned(v, text) or k in identity or " of my " in text, (t.id, k, v)
        for v in t.ground_truth.communicate:  # nothing the user says, now or when asked
            assert not value_mentioned(v.value, said), (t.id, v)
        assert g_schema.name == t.domain


def customer_table_of(schema) -> Any:
    """docs/tasks.md: the first table with a unique email column and a name column."""
    return next((tb for tb in schema.tables if any(c.type == "email" and c.unique for c in tb.columns)
                 and any(c.type == "name" for c in tb.columns)), None)


def shortest_ref_paths(schema, customer: str) -> dict[str, list[list[tuple[str, str, str]]]]:
    """docs/tasks.md, Ownership: table -> its shortest chains of ref columns to the customer table (ties
    kept, no table twice), found here by breadth-first search level by level."""
    out = {}
    for start in schema.tables:
        level: list[tuple[str, list[tuple[str, str, str]]]] = [(start.name, [])]
        while level:
            done = [path for table, path in level if table == customer]
            if done:
                out[start.name] = done
                break
            nxt = []
            for table, path in level:
                seen = {start.name, *(s[2] for s in path)}
                nxt += [(c.table, [*path, (table, c.name, c.table)]) for c in schema.table(table).columns
                        if c.type == "ref" and c.table not in seen]
            level = nxt
    return out


def owners_in_sql(conn: sqlite3.Connection, paths: dict, table: str, key: Any) -> set:
    """The customer keys row ``key`` of ``table`` reaches along its ownership paths, joined in plain SQL."""
    found = set()
    for path in paths.get(table, []):
        if not path:  # a customer row owns itself
            pk = primary_key(conn, table)
            found |= {r[0] for r in conn.execute(f'SELECT "{pk}" FROM "{table}" WHERE "{pk}" = ?', (key,))}
            continue
        joins = "".join(f' JOIN "{nxt}" a{i + 1} ON a{i}."{col}" = a{i + 1}."{primary_key(conn, nxt)}"'
                        for i, (_, col, nxt) in enumerate(path))
        last = f'a{len(path)}."{primary_key(conn, path[-1][2])}"'
        sql = f'SELECT {last} FROM "{table}" a0{joins} WHERE a0."{primary_key(conn, table)}" = ?'
        found |= {r[0] for r in conn.execute(sql, (key,))}
    return found


def snapshot_sql(db) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.deserialize(db.snapshot())
    return conn


def goal_owners(g: Generated, t: Task, paths: dict) -> tuple[set, sqlite3.Connection]:
    """Replay the chain; before each goal, the owners of the rows its id/ref parameters name, and after
    it, the owners of the rows it inserted (both in plain SQL). Returns them and the final state."""
    schema = g.runtime.schema
    db = g.runtime.build_db(t.initial)
    ctx = ToolContext(schema.clock)
    owners: set = set()
    for s in t.chain:
        if s.role == "goal":
            conn = snapshot_sql(db)
            for p in g.runtime.tools[s.tool].spec.params:
                if s.args.get(p.name) is None or not p.column:
                    continue
                tb, col = p.column.split(".")
                c = schema.table(tb).column(col)
                table = tb if c.type == "id" else c.table if c.type == "ref" else None
                if table is not None:
                    owners |= owners_in_sql(conn, paths, table, s.args[p.name])
            keys = {tb.name: set(select_keys(conn, tb.name, {})) for tb in schema.tables}
            conn.close()
        g.runtime.call(db, ctx, s.tool, s.args)
        if s.role == "goal":
            conn = snapshot_sql(db)
            for tb in schema.tables:
                for key in set(select_keys(conn, tb.name, {})) - keys[tb.name]:
                    owners |= owners_in_sql(conn, paths, tb.name, key)
            conn.close()
    final = snapshot_sql(db)
    db.close()
    return owners, final


@pytest.mark.parametrize("name", DOMAINS)
def test_goals_act_only_on_the_personas_records(gen, name):
    """docs/tasks.md, Ownership: a task with a persona acts on no other customer's record; a task with
    none (a colleague asks) acts on no customer's record at all."""
    g = gen[name]
    schema = g.runtime.schema
    customer = customer_table_of(schema)
    assert customer is not None  # every sample domain has customers
    paths = shortest_ref_paths(schema, customer.name)
    email_col = next(c.name for c in customer.columns if c.type == "email" and c.unique)
    pk = customer.primary_key
    owned = 0
    for t in g.tasks:
        owners, final = goal_owners(g, t, paths)
        if t.scenario.actor == "none":  # nobody gives a name: no customer's record is touched
            assert owners == set(), (t.id, owners)
            assert t.scenario.persona == "someone who does not give their name", t.id
        elif t.scenario.actor == "staff":  # a member of staff, who says so, on one customer's records at most
            assert len(owners) <= 1 and t.scenario.persona.endswith("(staff)"), (t.id, owners)
        else:
            m = re.fullmatch(r"(.+), an? .+ with email (\S+)", t.scenario.persona)
            assert m and t.scenario.known[email_col] == m.group(2), t.id
            initial = plain_sql(g.runtime, t)
            sql = f'SELECT "{pk}" FROM "{customer.name}" WHERE "{email_col}" = ?'
            # the persona is a customer of the initial state, or one the chain signs up
            who = [r[0] for r in initial.execute(sql, (m.group(2),))] or [r[0] for r in final.execute(sql, (m.group(2),))]
            initial.close()
            assert len(who) == 1, t.id
            assert owners <= set(who), (t.id, who, owners)
            owned += bool(owners)
        final.close()
    customers = sum(t.scenario.actor == "customer" for t in g.tasks)
    assert owned >= customers // 3  # the check is not vacuous: most customer tasks act on the persona's records


def test_tasks_without_a_state_change_ask_for_a_value_that_cannot_be_guessed(gen):
    def changes(t: Task) -> bool:
        e = t.ground_truth.expected
        return bool(e.inserted or e.updated or e.deleted)

    def unguessable(g: Generated, t: Task) -> bool:
        enum_values = {v for tb in g.runtime.schema.tables for c in tb.columns for v in c.values}
        return any(not isinstance(v.value, bool) and v.value not in enum_values for v in t.ground_truth.communicate)

    quiet = [(g, t) for g, t in all_tasks(gen) if not changes(t)]
    assert len(quiet) >= 5  # single-goal refusals and read-only goals do occur
    assert [t.id for g, t in quiet if not unguessable(g, t)] == []


def look_alikes(g: Generated, t: Task) -> list[str]:
    """New rows in the initial state that resemble what the user talks about (docs: Distractors)."""
    schema = g.runtime.schema
    seed_keys = {tb: {r[schema.table(tb).primary_key] for r in rows} for tb, rows in g.domain.rows.items()}
    new = {tb: [r for r in rows if r[schema.table(tb).primary_key] not in seed_keys.get(tb, set())]
           for tb, rows in t.initial.upsert.items()}
    db = g.runtime.build_db(t.initial)
    found = []
    customer = customer_table_of(schema)
    if customer is not None and "," in t.scenario.persona:
        name_col = next(c.name for c in customer.columns if c.type == "name")
        email_col = next(c.name for c in customer.columns if c.type == "email" and c.unique)
        person = t.scenario.persona.split(",")[0]
        found += [f"namesake {r[customer.primary_key]}" for r in new.get(customer.name, [])
                  if r[name_col] == person and r[email_col] != t.scenario.known.get(email_col)]
    for ident in t.identifications:  # fails exactly one condition of the user's description
        if len(ident.filters) >= 2:
            found += [f"one-off {r}" for r in new.get(ident.table, [])
                      if sum(r[c] != v for c, v in ident.filters.items()) == 1]
    targets = {(i.table, i.target) for i in t.identifications}
    targets |= {(tb.name, v) for s in t.chain for v in s.args.values() for tb in schema.tables
                if isinstance(v, str) and db.get(tb.name, v) is not None}
    for tb, key in targets:  # a near-duplicate of a record the chain acts on
        base, pk = db.get(tb, key), schema.table(tb).primary_key
        found += [f"near {r[pk]}" for r in new.get(tb, []) if r[pk] != key
                  and sum(c != pk and v is not None and v == base[c] for c, v in r.items()) >= 1]
    db.close()
    return found


@pytest.mark.parametrize("name", DOMAINS)
def test_distractor_tasks_really_contain_look_alike_rows(gen, name):
    g = gen[name]
    with_d = [t for t in g.tasks if t.has_distractors]
    assert with_d
    for t in with_d:
        assert look_alikes(g, t), t.id


def test_a_near_duplicate_shares_something_with_its_record(gen):
    g = gen["blood_bank"]
    tasks, _ = TaskGenerator(g.domain, g.runtime, seed=4).generate(20)
    # with few candidate columns, keeping each with probability 0.6 once kept none at all
    with_distractors = [t for t in tasks if t.has_distractors]
    assert with_distractors
    for t in with_distractors:
        assert look_alikes(Generated(g.domain, g.runtime, tasks, {}), t), t.id


def test_refusal_and_distractor_shares_follow_the_quotas(gen):
    for name, g in gen.items():
        refusals = sum(t.is_refusal for t in g.tasks)
        # a verified refusal is forced whenever the share would fall under 15%
        assert refusals >= math.ceil(0.15 * len(g.tasks)), name
        assert sum(t.has_distractors for t in g.tasks) >= len(g.tasks) // 2, name
    tasks = [t for _, t in all_tasks(gen)]
    assert 0.15 <= sum(t.is_refusal for t in tasks) / len(tasks) <= 0.3
    assert 0.65 <= sum(t.has_distractors for t in tasks) / len(tasks) <= 0.95


def test_state_key_follows_the_initial_state(gen):
    for g in gen.values():
        by_initial: dict[str, set[str]] = {}
        for t in g.tasks:
            by_initial.setdefault(t.initial.model_dump_json(), set()).add(t.state_key)
        keys = [k for ks in by_initial.values() for k in ks]
        assert len(keys) == len(set(keys)) == len(g.tasks)
        a, b = g.tasks[0], g.tasks[1]
        assert a.initial != b.initial
        same_id = a.model_copy(update={"initial": b.initial.model_copy(deep=True)})
        assert same_id.id == a.id and same_id.state_key != a.state_key
        assert a.model_copy(deep=True).state_key == a.state_key


# ---------------------------------------------------------------------- duplicates and ambiguity


def test_a_tight_chain_limit_gives_duplicates_that_are_dropped(workspace, tmp_path):
    """blood_bank with --max-chain 1 repeats itself: the repeats must go, not be kept."""
    from core.data.store import Workspace

    other = tmp_path / "ws"
    other.mkdir()
    src, dst = sqlite3.connect(workspace / "workspace.db"), sqlite3.connect(other / "workspace.db")
    src.backup(dst)
    src.close()
    dst.close()
    for seed in range(8):  # the case arises for some seed
        out = cli("tasks", "generate", "blood_bank", "-n", "60", "--max-chain", "1", "--seed", str(seed),
                  "--workspace", str(other), "--json")
        stats = json.loads(out.stdout)["domains"][0]
        if stats["drop_reasons"].get("duplicate of an earlier task", 0):
            break
    assert stats["drop_reasons"].get("duplicate of an earlier task", 0) >= 1, stats
    tasks = Workspace(other, create=False).load_tasks("blood_bank")
    assert len(tasks) == 60 and all(len(t.chain) == 1 for t in tasks)
    sigs = [signature(t) for t in tasks]
    assert len(set(sigs)) == len(sigs)


def test_generate_drops_an_attempt_that_repeats_an_earlier_chain(gen, monkeypatch):
    g = gen["bike_rental"]
    orig = TaskGenerator.attempt
    first: dict[str, Task] = {}

    def repeating(self, index, **kw):  # every third attempt comes back with the first task again
        if "task" in first and index % 3 == 0:
            return first["task"].model_copy(deep=True)
        task = orig(self, index, **kw)
        first.setdefault("task", task)
        return task

    monkeypatch.setattr(TaskGenerator, "attempt", repeating)
    tasks, stats = TaskGenerator(g.domain, g.runtime, seed=4).generate(10)
    assert stats.drop_reasons["duplicate of an earlier task"] >= 2
    assert len(tasks) == 10
    assert len({signature(t) for t in tasks}) == 10 and len({t.id for t in tasks}) == 10


def test_distractors_that_break_uniqueness_are_taken_out(gen, monkeypatch):
    """docs/tasks.md step 7: "If not, the distractors are taken out again"."""
    g = gen["bike_rental"]
    orig = TaskGenerator._distract
    duplicated: set[str] = set()

    def ambiguous(self, db, goals, idents, persona, rng):
        added = orig(self, db, goals, idents, persona, rng)
        for ident in idents:  # an exact copy of each target row, under a new id
            row = dict(db.get(ident.table, ident.target))
            row.pop(self.schema.table(ident.table).primary_key)
            db.insert(ident.table, row)
            duplicated.add(ident.model_dump_json())
            added.append(f"{ident.table}: a copy of {ident.target}")
        return added

    monkeypatch.setattr(TaskGenerator, "_distract", ambiguous)
    tasks, _ = TaskGenerator(g.domain, g.runtime, seed=1).generate(20)
    schema = g.runtime.schema
    exposed = [t for t in tasks if any(i.model_dump_json() in duplicated
                                       and schema.table(i.table).primary_key not in i.filters
                                       for i in t.identifications)]
    assert len(exposed) >= 5  # the copies really met tasks whose user names a record by its details
    for t in tasks:
        conn = plain_sql(g.runtime, t)
        for ident in t.identifications:
            assert select_keys(conn, ident.table, ident.filters) == [ident.target], (t.id, ident)
        conn.close()
    assert not [t.id for t in exposed if t.has_distractors]
