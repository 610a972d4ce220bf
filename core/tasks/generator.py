"""Phase 2 — verified tasks by graph expansion.

For each attempt: pick goal operations along the Tool Dependency Graph (a seed chain, possibly
extended to several goals); build an initial state from the seed data in which every goal's
requirements hold (or, for a refusal, in which the last goal is forbidden); decide how the
user refers to each record (by what they know, by an earlier step's output, or through a
lookup the agent must make); add distractors; run the chain to record the ground truth; and
re-verify: the oracle scores 1, doing nothing scores 0, and every fact in the scenario still
identifies its record uniquely. A chain that cannot be made to run is dropped and counted.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.data.db import DomainDB, IntegrityError
from core.data.invariants import Invariants
from core.data.models import Domain, Provenance
from core.data.seed import RowFactory, derive_seed
from core.data.taskmodel import ChainStep, GroundTruth, Identification, Review, Scenario, Task
from core.evaluation.reward import RequiredValue, expected_from, value_mentioned
from core.runtime.context import ToolContext
from core.runtime.env import DomainRuntime, Environment, delta_between
from core.spec import expr as X
from core.spec.blueprint import Operation, parse_blueprint
from core.spec.interp import Evaluator, op_lookups
from core.synthesis.arrange import Arranger
from core.synthesis.backends import Backend, ProceduralBackend
from core.synthesis.graph import to_networkx
from core.tasks import wording as W
from core.tasks.ownership import Ownership, key_params
from core.tasks.wording import BEHAVIOUR, plural, tidy, with_article

__all__ = ["Task", "TaskGenerator", "GenStats", "generate_tasks"]


class Drop(Exception):
    """An attempt that could not be made into a verified task (counted, never patched)."""


@dataclass
class GenStats:
    name: str
    attempted: int = 0
    verified: int = 0
    dropped: int = 0
    with_distractors: int = 0
    refusals: int = 0
    max_chain: int = 0
    seconds: float = 0.0
    drop_reasons: Counter = field(default_factory=Counter)
    chain_lengths: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "attempted": self.attempted, "verified": self.verified, "dropped": self.dropped,
                "with_distractors": self.with_distractors, "refusals": self.refusals, "max_chain": self.max_chain,
                "seconds": round(self.seconds, 3), "chain_lengths": dict(sorted(self.chain_lengths.items())),
                "drop_reasons": dict(self.drop_reasons.most_common(8))}


@dataclass
class Goal:
    op: Operation
    args: dict[str, Any]
    fixed: dict[str, str]  # param -> output field of the previous goal
    expect: str = "ok"


@dataclass
class Ref:
    """How the user refers to one argument value."""

    phrase: str
    source: str  # "user" | "step" | "lookup"
    lookups: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ident: Identification | None = None
    known: dict[str, Any] = field(default_factory=dict)
    vague: str = ""  # the phrase when the user leaves the facts for the agent to ask ("one of my passes")
    noun: str = ""  # the record's noun ("repair ticket"), dropped from the intent before a "the …" phrase


def _trivial(v: Any) -> bool:
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, int | float):
        return abs(v) < 2
    return len(str(v).strip()) < 2


_FUNCTION = frozenset({"for", "to", "of", "the", "a", "an", "my", "with", "at", "in", "on", "from", "by", "into",
                       "and", "or", "as", "than", "via"})


def _skew(seen: dict[bool, Counter], key: str, refusal: bool, prior: float, bound: float) -> float:
    """How much more often ``key`` has been in the other kind of task than in this one (refusal or
    not), as the ratio of its shares in ``seen[True]`` (refusals) and ``seen[False]`` (the rest),
    smoothed by ``prior`` and clipped to [1/bound, bound]: a draw weighted by it evens the kinds out."""
    ref, done = seen[True], seen[False]
    r = (ref[key] + prior) / (sum(ref.values()) + 2 * prior)
    c = (done[key] + prior) / (sum(done.values()) + 2 * prior)
    return min(bound, max(1 / bound, (c / r) if refusal else (r / c)))


def _human(name: str) -> str:
    return name.replace("_", " ")


class TaskGenerator:
    def __init__(self, domain: Domain, runtime: DomainRuntime | None = None, seed: int = 0, max_chain: int = 6,
                 p_refusal: float = 0.15, p_distractors: float = 0.7, backend: Backend | None = None):
        self.domain = domain
        self.backend = backend or ProceduralBackend()
        self.schema = domain.domain
        self.runtime = runtime or DomainRuntime(domain)
        self.seed, self.max_chain = seed, max_chain
        self.p_refusal, self.p_distractors = p_refusal, p_distractors
        bp = parse_blueprint(domain.blueprint_text, domain.provenance.blueprint or domain.name)
        self.ops = {op.name: op for op in bp.operations if op.name in self.runtime.tools}
        self.goals = [op for op in self.ops.values() if not op.spec.derived]
        if not self.goals:
            raise ValueError(f"domain {domain.name!r} has no verified business operation to build tasks from")
        # who asks: customers for their own records, staff for staff operations (the blueprint's actor)
        self.pools = {"customer": [op for op in self.goals if op.spec.actor in ("customer", "either")],
                      "staff": [op for op in self.goals if op.spec.actor in ("staff", "either")]}
        staff_only = sum(op.spec.actor == "staff" for op in self.goals)
        self.p_staff = staff_only / len(self.goals) if self.pools["customer"] else 1.0
        self.graph = to_networkx(list(self.ops), domain.edges)
        self.ctx = ToolContext(self.schema.clock)
        self.ownership = Ownership(self.schema)
        self.invariants = Invariants.for_domain(domain)  # a task's initial and final states keep them
        self.factory = RowFactory(self.schema, derive_seed(seed, "tasks"), self.invariants)
        self.customer = c = self.ownership.customer  # core.tasks.ownership.customer_table
        # the customer table's unique email and its name column (customer_table guarantees both)
        self.email_col = next(col.name for col in c.columns if col.type == "email" and col.unique) if c else None
        self.name_col = next(col.name for col in c.columns if col.type == "name") if c else None
        self._enum_values = {v for t in self.schema.tables for c in t.columns for v in c.values}
        self.seed_rows = {t: list(r) for t, r in domain.rows.items()}
        self._seen: dict[bool, Counter] = {True: Counter(), False: Counter()}  # goal ops of refusals / the rest
        self._actors: dict[bool, Counter] = {True: Counter(), False: Counter()}  # who asked, the same way
        self._refusable_of: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ helpers

    def _tool(self, name: str) -> str | None:
        return name if name in self.runtime.tools else None

    def _db(self) -> DomainDB:
        return DomainDB.from_snapshot(self.schema, self.runtime.seed_snapshot)

    def _run_goals(self, db: DomainDB, goals: list[Goal], before: Any = None, after: Any = None) -> list[Any]:
        """Run the goals in order on ``db``; args of fixed params come from the previous output.

        ``before(goal, db)`` and ``after(goal, db)``, when given, are called around each goal's run
        (its args resolved)."""
        outs: list[Any] = []
        for i, g in enumerate(goals):
            args = dict(g.args)
            for p, f in g.fixed.items():
                prev = outs[i - 1] if i else None
                if not isinstance(prev, dict) or f not in prev:
                    raise Drop("an earlier goal did not produce the value a later one needs")
                args[p] = prev[f]
            g.args = args
            if before is not None:
                before(g, db)
            out = self.runtime.call(db, self.ctx, g.op.name, args)
            if after is not None:
                after(g, db)
            if out.kind != g.expect:
                raise Drop(f"goal {g.op.name} gave {out.kind}, expected {g.expect}")
            outs.append(out.result if out.ok else out.error)
        return outs

    # ------------------------------------------------------------------ goals

    # how many goals a chain aims at (1, 2, 3): a refusal's chain is cut at its last refusable goal and
    # single-goal refusals are dropped more often, so refusals aim shorter to end up as long as the rest
    LENGTH_WEIGHTS = {False: (5, 4, 2), True: (9, 3, 1)}

    def _pick_goals(self, rng: random.Random, min_goals: int = 1, actor: str = "customer",
                    refusal: bool = False) -> list[Goal]:
        pool = self.pools[actor]
        allowed = {op.name for op in pool}
        # an operation that can never be refused (no requirement the user can be shown) is drawn less
        # often: when the operations of refusals and of other tasks differ, the request gives away
        # which tasks are refusals (bench/validity.py, refusal_auc)
        first = rng.choices(pool, weights=[self._weight(op, refusal) for op in pool])[0]
        goals = [Goal(first, {}, {})]
        want = min(self.max_chain, max(min_goals, rng.choices([1, 2, 3], weights=self.LENGTH_WEIGHTS[refusal])[0]))
        while len(goals) < want:
            prev = goals[-1].op
            succ = []
            for nxt in sorted(self.graph.successors(prev.name)):
                op = self.ops.get(nxt)
                if op is None or nxt not in allowed or any(g.op.name == nxt for g in goals):
                    continue
                label = {}
                for e in self.graph[prev.name][nxt]["edges"]:
                    if e.kind == "data":
                        label = {p: f for f, p in e.label.items()}
                succ.append((op, label))
            if not succ:
                break
            op, label = rng.choices(succ, weights=[self._weight(o, refusal) for o, _ in succ])[0]
            # follow the data edge only for key parameters (ids), which the user could not know yet
            keys = {lk.key.name for lk in op_lookups(op) if isinstance(lk.key, X.Param)}
            fixed = {p: f for p, f in label.items() if p in keys and rng.random() < 0.8}
            goals.append(Goal(op, {}, fixed))
        return goals

    PLAIN_WEIGHT = 0.1  # the draw weight of an operation with nothing refusable, against 1

    def _p_staff(self, refusal: bool) -> float:
        """The share of staff tasks, nudged as :meth:`_weight` nudges operations: staff requests must
        not be more (or less) often refused than customers' requests."""
        if self.p_staff in (0.0, 1.0):
            return self.p_staff
        odds = self.p_staff / (1 - self.p_staff) * _skew(self._actors, "staff", refusal, prior=1.0, bound=3.0)
        return odds / (1 + odds)

    def _weight(self, op: Operation, refusal: bool = False) -> float:
        """Draw weight of ``op`` as a goal. An operation that can never be refused is drawn less often,
        and each operation is drawn more for the kind of task (refusal or not) it has been in less so
        far in this run: when refusals and other tasks act through different operations, the request
        alone gives refusals away (bench/validity.py, refusal_auc)."""
        base = 1.0 if self._refusable(op) else self.PLAIN_WEIGHT
        return base * _skew(self._seen, op.name, refusal, prior=0.5, bound=5.0)

    def _refusable(self, op: Operation) -> list[int]:
        """The requirements of ``op`` a refusal can break visibly: they read a stored field, no aggregate."""
        out = self._refusable_of.get(op.name)
        if out is None:
            out = self._refusable_of[op.name] = [
                i for i, (e, _) in enumerate(op.requires)
                if any(isinstance(n, X.Field) for n in X.walk(e)) and not any(isinstance(n, X.Agg) for n in X.walk(e))]
        return out

    def _arrange(self, rng: random.Random, goals: list[Goal], refusal: bool) -> DomainDB:
        """An initial state in which every goal runs (the last one forbidden for a refusal)."""
        db = self._db()
        owner = None  # the one customer whose rows the goals so far act on
        for gi, g in enumerate(goals):
            last = gi == len(goals) - 1
            violate = None
            if refusal and last:
                cands = self._refusable(g.op)
                if not cands:
                    raise Drop("no requirement of the goal can be shown to the user")
                violate = rng.choice(cands)
                g.expect = "precondition"
            sim = DomainDB.from_snapshot(self.schema, db.snapshot())
            prev = self._run_goals(sim, goals[:gi]) if gi else []
            arr = Arranger(sim, self.factory, self.ctx, rng).bind(g.op)
            fixed_vals = {p: prev[-1][f] for p, f in g.fixed.items()} if gi else {}
            sim.mark()
            args = arr.choose_args(g.op, {**self._owned_keys(sim, db, g.op, owner, fixed_vals, rng), **fixed_vals})
            got = arr.arrange(g.op, args, violate=violate)
            if got is None:
                raise Drop("could not build a state for the goal")
            if any(got.get(p) != v for p, v in fixed_vals.items()):
                raise Drop("arranging changed a value taken from an earlier step")
            if violate is None:
                self._email_for_name(sim, g.op, got)
            # the arranger makes the requirements true; rows it touched may now break an invariant
            # (an active rental with an end station): repair them while the requirements still hold
            self.factory.repair(sim, rounds=3, changed_only=True,
                                keep=lambda sim=sim, op=g.op, got=got, v=violate: self._requirements_hold(sim, op, got, v))
            g.args = got
            if owner is None and self.customer is not None:
                found = set().union(*(self.ownership.owner_of(sim, t, k) for t, k in self._acted_on(g, sim)))
                owner = next(iter(found)) if len(found) == 1 else None
            self._port(sim, db)
            sim.close()
        return db

    def _owned_keys(self, db: DomainDB, initial: DomainDB, op: Operation, owner: Any, fixed: dict[str, Any],
                    rng: random.Random) -> dict[str, Any]:
        """For a later goal, rows of the customer the earlier goals act on, where there are any: a
        task is one customer's, and a random row of another customer's would only be dropped. Rows
        an earlier goal creates are left to the data edges (arranging may not change them)."""
        if owner is None:
            return {}
        out = {}
        for p, table in key_params(self.schema, op.spec):
            if p in fixed:
                continue
            cands = [k for k in initial.keys(table)
                     if db.get(table, k) is not None and self.ownership.owner_of(db, table, k) == {owner}]
            if cands:
                out[p] = rng.choice(cands)
        return out

    def _requirements_hold(self, db: DomainDB, op: Operation, args: dict[str, Any], violate: int | None) -> bool:
        """Every requirement of ``op`` holds for ``args`` in ``db``, except ``violate``, which fails."""
        ev = Evaluator(db, self.ctx, args)
        for i, (e, _) in enumerate(op.requires):
            try:
                ok = bool(ev.eval(e))
            except Exception:  # a row the requirement reads is gone
                return False
            if ok != (i != violate):
                return False
        return True

    def _email_for_name(self, db: DomainDB, op: Operation, args: dict[str, Any]) -> None:
        """A new customer's email matches their name ("Ann Lee" signs up as ann.lee@...), when the
        operation takes both and the address is free; the drawn one stays otherwise."""
        cols = {}
        for p in op.spec.params:
            table, _, col = (p.column or "").rpartition(".")
            if self.schema.has_table(table) and self.schema.table(table).has_column(col):
                cols[self.schema.table(table).column(col).type] = (p.name, table, col)
        if "name" not in cols or "email" not in cols:
            return
        (pn, _, _), (pe, table, col) = cols["name"], cols["email"]
        name, email = args.get(pn), args.get(pe)
        if not isinstance(name, str) or not isinstance(email, str) or "@" not in email:
            return
        local = ".".join(re.findall(r"[a-z]+", name.lower()))
        new = f"{local}@{email.split('@', 1)[1]}"
        if local and new != email and not db.keys(table, **{col: new}):
            args[pe] = new

    def _port(self, sim: DomainDB, db: DomainDB) -> None:
        """Apply the arranger's changes (recorded in ``sim``'s undo log) to the initial state."""
        for table, pre in sim.before.items():
            pk = self.schema.table(table).primary_key
            for key, old in pre.items():
                now = sim.get(table, key)
                base = db.get(table, key)
                if old is not None and base is None:
                    raise Drop("arranging changed a row an earlier goal created")
                if now is None:
                    if base is not None:
                        db.delete(table, key)
                elif base is None:
                    db.insert(table, now)
                else:
                    changed = {c: v for c, v in now.items() if c != pk and (old is None or old.get(c) != v)}
                    if changed:
                        db.update(table, key, changed)

    # ------------------------------------------------------------------ references

    def _acted_on(self, g: Goal, db: DomainDB) -> list[tuple[str, Any]]:
        """(table, key) of every row goal ``g`` acts on: its key parameters (``key_params``: an id or a
        ref column) and the rows its specification looks up by a parameter."""
        out = [(t, g.args.get(p)) for p, t in key_params(self.schema, g.op.spec)]
        out += [(lk.table, g.args.get(lk.key.name)) for lk in op_lookups(g.op) if isinstance(lk.key, X.Param)]
        return list(dict.fromkeys((t, k) for t, k in out if k is not None and db.get(t, k) is not None))

    def _owners(self, db: DomainDB, goals: list[Goal]) -> tuple[set, dict[Any, dict]]:
        """Run the chain on a copy of the initial state ``db`` and collect the customers who own the
        rows the goals act on: each goal's rows read just before it runs (so a row an earlier goal
        created is owned per the state that goal left), and the rows it inserts, read just after.
        Also returns each owner's customer row as first seen (a customer the chain creates)."""
        owners: set = set()
        rows: dict[Any, dict] = {}
        c = self.customer
        if c is None:
            return owners, rows

        def own(state: DomainDB, table: str, key: Any) -> set:
            found = self.ownership.owner_of(state, table, key)
            for who in found:
                owners.add(who)
                rows.setdefault(who, state.get(c.name, who))
            return found

        def before(g: Goal, state: DomainDB) -> None:
            state.mark()
            for table, key in self._acted_on(g, state):
                found = own(state, table, key)
                if table != c.name and db.get(table, key) is not None and any(db.get(c.name, w) is None for w in found):
                    # the arranger pointed an existing row at the id a customer the chain creates will get
                    raise Drop("a record belongs to a customer the task creates later")

        def after(g: Goal, state: DomainDB) -> None:
            for table, pre in state.before.items():
                for key, old in pre.items():
                    if old is None and state.get(table, key) is not None:  # inserted by this goal
                        own(state, table, key)

        sim = DomainDB.from_snapshot(self.schema, db.snapshot())
        try:
            self._run_goals(sim, goals, before, after)
        finally:
            sim.close()
        return owners, rows

    def _persona(self, db: DomainDB, goals: list[Goal]) -> dict | None:
        """The customer the task is for: the one customer whose rows the goals act on, or None when the
        goals touch no customer's row (a colleague asks). Rows of two customers: the attempt is dropped.

        A customer the chain itself creates (a new customer signing up) is the persona too; their
        row is read from the state the creating goal left."""
        owners, rows = self._owners(db, goals)
        if len(owners) > 1:
            raise Drop("a goal acts on another customer's record")
        if not owners:
            return None
        (who,) = owners
        return db.get(self.customer.name, who) or rows[who]

    def _refer(self, db: DomainDB, table: str, key: Any, persona: dict | None, rng: random.Random) -> Ref:
        ref = self._refer_by(db, table, key, persona, rng)
        new = [lk for lk in ref.lookups if lk not in self._planned]
        if len(new) > self._budget:  # the chain may not grow past --max-chain: the user gives the id
            return self._by_id(table, key)
        self._budget -= len(new)
        self._planned += new
        return ref

    def _by_id(self, table: str, key: Any) -> Ref:
        """The user names the record by its id ("bike BK-0007")."""
        t = self.schema.table(table)
        noun = _human(t.singular)
        return Ref(f"{noun} {key}", "user", [], Identification(table=table, filters={t.primary_key: key}, target=key),
                   {t.primary_key: key}, noun=noun)

    def _refer_by(self, db: DomainDB, table: str, key: Any, persona: dict | None, rng: random.Random) -> Ref:
        t = self.schema.table(table)
        c = self.customer
        noun = _human(t.singular)
        email_col = self.email_col
        if c is not None and table == c.name and persona and key == persona[c.primary_key]:
            tool = self._tool(f"find_{c.singular}_by_{email_col}")
            if tool:
                email = persona[email_col]
                return Ref("me", "lookup", [(tool, {email_col: email})],
                           Identification(table=table, filters={email_col: email}, target=key), {email_col: email})
        row = db.get(table, key)
        if persona and c is not None and row is not None:
            for col in t.columns:
                if col.type == "ref" and col.table == c.name and row[col.name] == persona[c.primary_key]:
                    by = col.name[:-3] if col.name.endswith("_id") else col.name
                    tool = self._tool(f"list_{table}_by_{by}")
                    sib = db.select(table, **{col.name: row[col.name]})
                    for d in sorted(t.columns, key=lambda x: (x.type != "enum", x.name)):
                        if d.name in (t.primary_key, col.name) or d.type in ("datetime", "ref", "text", "id"):
                            continue
                        val = row[d.name]
                        if val is None or isinstance(val, bool) or sum(s[d.name] == val for s in sib) != 1:
                            continue
                        if tool and rng.random() < 0.85:
                            pref = self._refer_by(db, c.name, persona[c.primary_key], persona, rng)
                            said = _human(val) if d.type == "enum" else val
                            if d.type == "enum" and "status" in d.name:
                                phrase = f"my {noun} that is {said}"
                            elif d.type == "enum":  # "my week pass", not "my pass with kind week"
                                rng.random()  # (the draw that once chose the wording: tasks stay as they were)
                                phrase = f"my {said} {noun}"
                            else:
                                phrase = rng.choice((f"my {noun} whose {d.noun} is {said}",
                                                     f"my {noun} with {d.noun} {said}"))
                            return Ref(phrase, "lookup", [*pref.lookups, (tool, {col.name: row[col.name]})],
                                       Identification(table=table, filters={col.name: row[col.name], d.name: val},
                                                      target=key), {**pref.known, d.name: val},
                                       vague=f"one of my {plural(noun)}", noun=noun)
                        break
        uniques = [col for col in t.columns if col.unique and col.type != "id" and row is not None
                   and row[col.name] is not None]
        if uniques and rng.random() < 0.6:
            u = rng.choice(uniques)
            tool = self._tool(f"find_{t.singular}_by_{u.name}")
            if tool:
                v = row[u.name]
                return Ref(f"the {noun} with {u.noun} {v}", "lookup", [(tool, {u.name: v})],
                           Identification(table=table, filters={u.name: v}, target=key), {u.name: v}, noun=noun)
        return self._by_id(table, key)

    # ------------------------------------------------------------------ distractors

    def _distract(self, db: DomainDB, goals: list[Goal], idents: list[Identification], persona: dict | None,
                  rng: random.Random) -> list[str]:
        added = []
        keys = {t.name: db.keys(t.name) for t in self.schema.tables}
        c = self.customer
        if persona and c is not None:  # someone with the same name
            name_col = self.name_col
            row = self.factory.make_row(c, keys, db.select(c.name), overrides={name_col: persona[name_col]})
            db.insert(c.name, row)
            added.append(f"{c.name}: another person named {persona[name_col]}")
        for ident in idents:  # a record that fails one condition of how the user describes theirs
            if len(ident.filters) < 2:
                continue
            t = self.schema.table(ident.table)
            for col_name, val in ident.filters.items():
                col = t.column(col_name)
                if col.type == "enum":
                    others = [v for v in col.values if v != val]
                    row = self.factory.make_row(t, keys, db.select(t.name),
                                                overrides={**ident.filters, col_name: rng.choice(others)})
                    db.insert(t.name, row)
                    added.append(f"{t.name}: a similar record with {col_name} {row[col_name]}")
                    break
        for g in goals:  # near-duplicates of the records the goals act on
            for lk in op_lookups(g.op):
                if not isinstance(lk.key, X.Param) or lk.table == (c.name if c else None):
                    continue
                t = self.schema.table(lk.table)
                base = db.get(t.name, g.args.get(lk.key.name))
                if base is None:
                    continue
                cands = [col.name for col in t.columns if col.name != t.primary_key and not col.unique
                         and col.type != "ref"]
                kept = [c for c in cands if rng.random() < 0.6] or cands[:1]  # it shares at least one thing
                keep = {c: base[c] for c in kept}
                row = self.factory.make_row(t, keys, db.select(t.name), overrides=keep)
                db.insert(t.name, row)
                added.append(f"{t.name}: a near-duplicate of {base[t.primary_key]}")
                break
        return added

    def _identified(self, db: DomainDB, idents: list[Identification]) -> bool:
        for i in idents:
            keys = db.keys(i.table, **i.filters)
            if keys != [i.target]:
                return False
        return True

    # ------------------------------------------------------------------ one attempt

    def attempt(self, index: int, refusal: bool | None = None, distract: bool | None = None,
                min_goals: int = 1) -> Task:
        """One task from attempt ``index`` (deterministic); raises :class:`Drop` when it cannot be verified."""
        rng = random.Random(derive_seed(self.seed, self.schema.name, "task", str(index)))
        r1, r2 = rng.random(), rng.random()
        refusal = r1 < self.p_refusal if refusal is None else refusal
        distract = r2 < self.p_distractors if distract is None else distract
        actor = "staff" if self.pools["staff"] and rng.random() < self._p_staff(refusal) else "customer"
        goals = self._pick_goals(rng, min_goals, actor, refusal)
        if refusal:  # end the chain at the last goal whose refusal the user can be shown
            last = max((i for i, g in enumerate(goals) if self._refusable(g.op)), default=None)
            if last is None:
                raise Drop("no requirement of the goal can be shown to the user")
            goals = goals[:last + 1]
        db = self._arrange(rng, goals, refusal)
        # check the whole chain runs from the initial state, resolve step-fed arguments, and find
        # whose records the goals act on: the persona, or a drop when it is more than one customer
        owner = self._persona(db, goals)
        # a member of staff refers to records by what picks them out, never as "mine"
        persona = owner if actor == "customer" else None
        who = "staff" if actor == "staff" else "customer" if persona else "none"
        self._budget, self._planned = self.max_chain - len(goals), []
        refs: dict[tuple[int, str], Ref] = {}
        for gi, g in enumerate(goals):
            key_tables = {lk.key.name: lk.table for lk in op_lookups(g.op) if isinstance(lk.key, X.Param)}
            own_ids = {p for p, t in key_params(self.schema, g.op.spec) if self.customer and t == self.customer.name}
            for p in g.op.spec.params:
                v = g.args.get(p.name)
                if p.name in g.fixed:
                    table = key_tables.get(p.name) or (p.column or p.name).split(".")[0]
                    noun = _human(self.schema.table(table).singular) if self.schema.has_table(table) else "one"
                    prev = goals[gi - 1].op
                    made = any(isinstance(e, X.Insert) and e.table == table for e in prev.effects)
                    mine = persona is not None and self.customer is not None and table == self.customer.name
                    refs[(gi, p.name)] = Ref("me" if mine else
                                             f"the {noun} you just created" if made else f"the same {noun}", "step")
                elif p.name in key_tables:
                    refs[(gi, p.name)] = self._refer(db, key_tables[p.name], v, persona, rng)
                elif p.name in own_ids and persona is not None and v == persona[self.customer.primary_key]:
                    # the user's own customer id, which they do not know: "me" (found by their email)
                    refs[(gi, p.name)] = self._refer(db, self.customer.name, v, persona, rng)
                elif v is not None:
                    said = _human(v) if p.enum else str(v)  # the user says "flat tire", the tool takes flat_tire
                    refs[(gi, p.name)] = Ref(said, "user", known={p.name: v})
        idents = [r.ident for r in refs.values() if r.ident is not None]
        if not self._identified(db, idents):
            raise Drop("the scenario's facts do not identify the records uniquely")

        expansion = []
        if len(goals) > 1:
            expansion.append("extended")
        if refusal:
            expansion.append("refusal")
        if distract:
            before = db.snapshot()
            added = self._distract(db, goals, idents, persona, rng)
            ok = bool(added)
            if ok:
                sim = DomainDB.from_snapshot(self.schema, db.snapshot())
                try:
                    self._run_goals(sim, goals)
                    ok = self._identified(db, idents)
                except Drop:
                    ok = False
                sim.close()
            if ok:
                expansion.append("distractors")
            else:
                db.restore(before)

        # the chain: lookups the agent must make, then each goal
        chain: list[ChainStep] = []
        done: set[str] = set()
        for gi, g in enumerate(goals):
            for p in g.op.spec.params:
                r = refs.get((gi, p.name))
                for tool, args in r.lookups if r else []:
                    sig = tool + json.dumps(args, sort_keys=True)
                    if sig not in done:
                        done.add(sig)
                        chain.append(ChainStep(tool=tool, args=args, role="lookup"))
            sources = {p: (refs[(gi, p)].source if (gi, p) in refs else "user") for p in g.args}
            chain.append(ChainStep(tool=g.op.name, args={}, role="goal", expect=g.expect, sources=sources))
        if len(chain) > self.max_chain:
            raise Drop("chain longer than --max-chain")

        delta = delta_between(self.schema, self.seed_rows, db.dump())
        db.close()
        task = Task(id=f"{self.schema.name}-{self.seed}-{index:05d}", domain=self.schema.name, chain=chain,
                    initial=delta, scenario=Scenario(persona="", goal="", instruction=""),
                    ground_truth=GroundTruth(final_hash="", expected={}, communicate=[]),
                    identifications=idents, expansion=expansion,
                    provenance=Provenance(backend=self.backend.name, seed=self.seed,
                                          blueprint=self.domain.provenance.blueprint,
                                          blueprint_sha256=self.domain.provenance.blueprint_sha256,
                                          parents=[self.schema.name]),
                    review=Review())
        task.scenario.actor = who
        self._check_policy(who, goals)
        return self._record(task, goals, refs, persona)

    def _check_policy(self, who: str, goals: list[Goal]) -> None:
        """The policy's actor rule (core/runtime/policy.py), checked on the ground truth: a customer
        asks for no staff operation. The other rules hold by construction or are checked elsewhere:
        a customer's task is the owner's, who is identified by email (:meth:`_scenario` makes it a
        known fact), ownership across customers in :meth:`_persona`, the blueprint's limits as
        invariants in :meth:`_record`."""
        if who != "staff":
            staff = [g.op.name for g in goals if g.op.spec.actor == "staff"]
            if staff:
                raise Drop(f"a customer asks for a staff operation ({staff[0]})")

    # ------------------------------------------------------------------ ground truth

    def _record(self, task: Task, goals: list[Goal], refs: dict, persona: dict | None) -> Task:
        env = Environment(self.runtime, task)
        goal_i = 0
        outs: list[Any] = []
        communicate: list[RequiredValue] = []
        rows: list[tuple[str, Any, str] | None] = []  # per value: (table, key, column) of the row it was read from
        for step in task.chain:
            if step.role == "goal":
                g = goals[goal_i]
                args = dict(g.args)
                for p, f in g.fixed.items():
                    args[p] = outs[-1][f]
                step.args = args
                goal_i += 1
            out = env.step({"name": step.tool, "arguments": step.args})
            kind = "ok" if out["ok"] else out["error"]["kind"]
            if kind != step.expect:
                raise Drop(f"step {step.tool} gave {kind}, expected {step.expect}")
            if step.role == "goal":
                res = out["result"] if out["ok"] else out["error"]
                outs.append(res)
                vals = self._values(goals[goal_i - 1].op, out)
                if not out["ok"] and not vals:
                    raise Drop("the refusal has no value that shows the user why")
                table = goals[goal_i - 1].op.spec.returns.table
                pk = self.schema.table(table).primary_key if table else None
                for v in vals:  # where the value lives, to tell the final one (below)
                    col = v.label.rpartition(".")[2]
                    key = res.get(pk) if out["ok"] and isinstance(res, dict) and pk else None
                    rows.append((table, key, col) if key is not None and v.label == f"{table}.{col}" else None)
                communicate += vals
        # "tell me the balance" asks for the balance at the end: a later goal that changed a reported
        # row's column (a sign-up fee after a refund) makes the final value the one to tell
        for i, where in enumerate(rows):
            if where is not None:
                now = env.db.get(where[0], where[1])
                if now is not None and where[2] in now and now[where[2]] != communicate[i].value:
                    communicate[i] = communicate[i].model_copy(update={"value": now[where[2]]})
        seen, uniq = set(), []
        for r in communicate:
            k = json.dumps(r.value)
            if k not in seen:
                seen.add(k)
                uniq.append(r)
        if not uniq:
            raise Drop("nothing the agent must tell the user")
        refused = goals[-1].expect == "precondition"
        expected = expected_from(env.db.before, env.db)
        task.ground_truth = GroundTruth(final_hash=env.db.state_hash(), expected=expected, communicate=uniq,
                                        diff=env.diff(),
                                        outcome="refused" if refused else "completed")
        task.scenario = self._scenario(task, goals, refs, persona, uniq, refused)
        # a value the user says (now or when asked) proves nothing: echoing the user must not score
        said = " ".join([task.scenario.instruction, *map(str, task.scenario.known.values())])
        fresh = [v for v in uniq if not value_mentioned(v.value, said)]
        if refused and not any(v.why == "what blocks the request" for v in fresh):
            raise Drop("what blocks the request is already in the user's words")
        if not fresh:
            raise Drop("every value to tell is already in the user's words")
        writes = any(g.op.spec.kind == "write" and g.expect == "ok" for g in goals)
        empty = not (expected.inserted or expected.updated or expected.deleted)
        if writes and empty:
            raise Drop("the goals undo each other: nothing in the final state to check")
        if empty and all(self._guessable(v.value) for v in fresh):
            # with no state change to check, the agent must report something it could only
            # have looked up; a status word could be guessed from the schema
            raise Drop("nothing to check but values that could be guessed")
        if len(fresh) != len(uniq):
            task.ground_truth.communicate = uniq = fresh
            task.scenario = self._scenario(task, goals, refs, persona, uniq, refused)
        # verification: both states are consistent, the oracle scores 1, doing nothing scores 0
        env.reset(task)
        bad = self.invariants.violations(env.db, self.ctx, limit=1)
        if bad:
            raise Drop(f"the initial state breaks an invariant: {bad[0].table}: {bad[0].check}")
        for step in task.chain:
            env.step({"name": step.tool, "arguments": step.args})
        bad = self.invariants.violations(env.db, self.ctx, changed_only=True, limit=1)
        if bad:
            raise Drop(f"the final state breaks an invariant: {bad[0].table}: {bad[0].check}")
        if env.evaluate(oracle_messages(task)).reward != 1.0:
            raise Drop("the oracle does not score 1: " + "; ".join(env.evaluate(oracle_messages(task)).reasons)[:300])
        env.reset(task)
        if env.evaluate([{"role": "user", "content": task.scenario.instruction}]).reward != 0.0:
            raise Drop("doing nothing scores")
        env.close()
        return task

    def _values(self, op: Operation, out: dict) -> list[RequiredValue]:
        if not out["ok"]:
            obs = out["error"].get("observed") or {}
            cands = [RequiredValue(value=v, label=k, why="what blocks the request")
                     for k, v in obs.items() if "." in k and "(" not in k and not _trivial(v)]  # stored fields
            cands.sort(key=lambda r: self._guessable(r.value))  # a balance or a date before a status word
            return cands[:1]
        res = out["result"]
        if not isinstance(res, dict):
            return []
        fields = [f for f in op.spec.report if f in res and not _trivial(res[f])]
        if not fields:
            pk = self.schema.table(op.spec.returns.table).primary_key if op.spec.returns.table else None
            fields = [f for f in ([pk] if pk else []) + list(res) if f in res and not _trivial(res[f])][:1]
        label = op.spec.returns.table or op.name
        return [RequiredValue(value=res[f], label=f"{label}.{f}", why=f"result of {op.name}") for f in fields]

    def _guessable(self, value: Any) -> bool:
        """A value any agent could name without looking: an enum value or a boolean of the domain."""
        return isinstance(value, bool) or (isinstance(value, str) and value in self._enum_values)

    # staff names: many, so that no name comes with one kind of request
    STAFF_FIRST = ("Sam", "Jo", "Alex", "Priya", "Chris", "Dana", "Lee", "Morgan", "Ravi", "Kim", "Tess", "Noel",
                   "Ana", "Ben", "Carla", "Dev", "Elif", "Femi", "Gita", "Hugo", "Ines", "Jonas", "Kofi", "Lena",
                   "Marco", "Nadia", "Omar", "Pia", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara")
    STAFF_LAST = ("Patel", "Kowalski", "Moreno", "Shah", "Okafor", "Lindqvist", "Tanaka", "Reyes", "Nair", "Fischer",
                  "Adeyemi", "Duarte", "Berg", "Castro", "Dubois", "Eriksen", "Fontaine", "Gallo", "Haddad", "Ito",
                  "Jansen", "Kaur", "Lopez", "Mensah", "Novak", "Olsen", "Park", "Quispe", "Rossi", "Silva")

    def _noun(self, label: str) -> str:
        """The noun for a value's label ("riders.balance" -> "balance", "loans.due_on" -> its label)."""
        table, _, col = label.rpartition(".")
        if self.schema.has_table(table) and self.schema.table(table).has_column(col):
            return self.schema.table(table).column(col).noun
        return _human(col or label)

    def _would_report(self, op: Operation) -> list[str]:
        """The nouns of what ``op`` reports when it succeeds (what the user asks to be told)."""
        table = op.spec.returns.table
        fields = list(op.spec.report) or ([self.schema.table(table).primary_key] if table else [])
        return [self._noun(f"{table or op.name}.{f}") for f in fields]

    def _scenario(self, task: Task, goals: list[Goal], refs: dict, persona: dict | None,
                  values: list[RequiredValue], refused: bool) -> Scenario:
        rng = random.Random(derive_seed(self.seed, self.schema.name, "words", task.id))
        actor = task.scenario.actor
        known: dict[str, Any] = {}
        withheld: set[str] = set()  # known facts the first message leaves for the agent to ask
        c = self.customer
        email_col, name_col = self.email_col, self.name_col
        if persona and c is not None:  # the persona's email first: another record's email must not hide it
            known[name_col] = persona[name_col]
            known[email_col] = persona[email_col]
            if rng.random() < 0.65:
                withheld.add(email_col)
        unknown: list[str] = []
        phrases = []
        for gi, g in enumerate(goals):
            text = g.op.spec.intent
            extra, extra_me = [], False
            for p in g.op.spec.params:
                r = refs.get((gi, p.name))
                if r is None:
                    continue
                vague = bool(r.vague) and rng.random() < 0.35
                for k, v in r.known.items():  # a second fact of the same name keeps its own key (email_2)
                    key, n = k, 1
                    while key in known and known[key] != v:
                        n += 1
                        key = f"{k}_{n}"
                    known[key] = v
                    if vague and k != email_col:
                        withheld.add(key)
                if r.source in ("lookup", "step") and r.ident is not None:
                    t = self.schema.table(r.ident.table)
                    unknown.append(t.column(t.primary_key).noun)
                slot = "{" + p.name + "}"
                phrase = r.vague if vague else r.phrase
                if slot not in text and phrase == "me":  # "book ... for one of my vehicles": say it once
                    extra_me = True
                    continue
                if slot not in text:
                    extra.append(f"{self._noun(p.column or p.name) if p.column else _human(p.name)} {phrase}")
                    continue
                head = text[:text.index(slot)]
                if phrase.startswith(("the ", "my ", "me", "one of")):  # "bike {bike_id}" -> "the bike with serial X"
                    if r.noun and head.endswith(f" {r.noun} "):  # "repair ticket {ticket_id}": the whole noun
                        text = text.replace(f" {r.noun} {slot}", f" {slot}", 1)
                    else:
                        text = re.sub(r"\b[a-z]+ " + re.escape(slot), slot, text, count=1)
                elif r.source == "user" and r.ident is not None and " " in phrase:
                    # "bike {bike_id}" + "bike BK-7" -> "bike BK-7"; "enrolment {enrollment_id}" + "enrollment
                    # ENR-1" -> "enrolment ENR-1": the intent's own noun stands before the slot
                    last = re.search(r"([a-z]+) $", head)
                    if head.endswith(phrase.rsplit(" ", 1)[0] + " ") or (last and last.group(1) not in _FUNCTION):
                        phrase = phrase.rsplit(" ", 1)[1]
                text = text.replace(slot, phrase)
            extra_me = extra_me and not re.search(r"\b(me|my)\b", text)
            phrases.append(text + (" for me" if extra_me else "") + (f", with {' and '.join(extra)}" if extra else ""))
        goal = tidy(W.chain(rng, phrases))
        goal = goal[:1].lower() + goal[1:]
        reason = tidy(W.request(rng, goal))
        # what the user wants to hear: the values of the goals that will be done, and for a refused
        # goal what it would have reported; a blocker is the policy's to tell (core/runtime/policy.py)
        asks = [self._noun(v.label) for v in values if v.why != "what blocks the request"]
        if refused:
            asks += self._would_report(goals[-1].op)
        asks = list(dict.fromkeys(a for a in asks if a))
        closing = rng.choice(W.CLOSINGS).format(nouns=W.join_nouns(asks)) if asks else ""
        if actor == "staff":
            staff = self.schema.staff or "member of staff"
            name = f"{rng.choice(self.STAFF_FIRST)} {rng.choice(self.STAFF_LAST)}"
            opening = rng.choice(W.STAFF_OPENINGS).format(name=name, role=staff, a_role=with_article(staff))
            persona_text = f"{name}, {with_article(staff)} (staff)"
        elif persona and c is not None:
            opening = rng.choice(W.CUSTOMER_OPENINGS).format(name=persona[name_col])
            if email_col not in withheld:
                opening += " " + rng.choice(("My email is {e}.", "My email address is {e}.",
                                             "I'm registered as {e}.", "My account email is {e}.")).format(
                    e=persona[email_col])
            persona_text = f"{persona[name_col]}, {with_article(_human(c.singular))} with email {persona[email_col]}"
            if persona[name_col] not in opening:
                withheld.add(name_col)
        else:
            opening = rng.choice(W.ANONYMOUS_OPENINGS)
            persona_text = "someone who does not give their name"
        draft = " ".join(x.strip() for x in (opening, reason, closing) if x.strip())
        instruction = self.backend.instruction(draft, {k: v for k, v in known.items() if k not in withheld},
                                               persona_text)
        for k, v in known.items():  # the rule check: every fact not left for the agent to ask is in the message
            if k not in withheld and not value_mentioned(v, instruction):
                raise Drop(f"the scenario does not state {k}")
        return Scenario(persona=persona_text, goal=goal, known=known, instruction=instruction, reason=reason,
                        unknown=list(dict.fromkeys(unknown)), behaviour=BEHAVIOUR, asks=asks, actor=actor)

    # ------------------------------------------------------------------ driver

    def generate(self, n: int, max_attempts: int | None = None) -> tuple[list[Task], GenStats]:
        stats = GenStats(self.schema.name)
        t0 = time.perf_counter()
        tasks: list[Task] = []
        sigs: set[str] = set()
        max_attempts = max_attempts or n * 20
        index = 0
        while len(tasks) < n and stats.attempted < max_attempts:
            index += 1
            stats.attempted += 1
            # keep the mix: refusals and distractors at their shares, some long chains
            nxt = stats.verified + 1
            refusal = True if stats.refusals < self.p_refusal * nxt else None
            distract = True if stats.with_distractors < self.p_distractors * nxt else None
            long = 3 if stats.max_chain < 5 and stats.verified >= n // 3 else 1
            self.factory.seen = {}  # unique values are checked against the database; no memory across attempts
            try:
                task = self.attempt(index, refusal=refusal, distract=distract, min_goals=long)
            except (Drop, ValueError, IntegrityError) as e:
                stats.dropped += 1
                reason = str(e) if isinstance(e, Drop) else f"could not make rows: {e}"
                stats.drop_reasons[reason[:120]] += 1
                continue
            sig = json.dumps([[s.tool, s.args] for s in task.chain], sort_keys=True, default=str)
            if sig in sigs:
                stats.dropped += 1
                stats.drop_reasons["duplicate of an earlier task"] += 1
                continue
            sigs.add(sig)
            tasks.append(task)
            stats.verified += 1
            stats.with_distractors += task.has_distractors
            stats.refusals += task.is_refusal
            self._seen[task.is_refusal].update(s.tool for s in task.chain if s.role == "goal")
            self._actors[task.is_refusal][task.scenario.actor] += 1
            stats.max_chain = max(stats.max_chain, len(task.chain))
            stats.chain_lengths[len(task.chain)] += 1
        stats.seconds = time.perf_counter() - t0
        return tasks, stats


def oracle_messages(task: Task) -> list[dict[str, Any]]:
    """What the oracle says: the user's request, then every required value."""
    parts = [f"{v.label.split('.')[-1].replace('_', ' ')}: {v.value}" for v in task.ground_truth.communicate]
    head = "I could not do that." if task.is_refusal else "Done."
    return [{"role": "user", "content": task.scenario.instruction},
            {"role": "assistant", "content": f"{head} " + "; ".join(parts)}]


def generate_tasks(domain: Domain, n: int = 100, max_chain: int = 6, seed: int = 0) -> tuple[list[Task], GenStats]:
    return TaskGenerator(domain, seed=seed, max_chain=max_chain).generate(n)
