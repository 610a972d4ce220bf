"""Reward soundness: perturbed oracle trajectories must score 0 when the outcome really changes.

For every task, the oracle trajectory is perturbed — a step dropped, an argument swapped for a
distractor's (another record of the same table, preferring ones planted in the task), a stray
write added, a required value told wrong, a goal run on another record (a look-alike row when
the task planted one) with the oracle's words, the outcome misreported with the oracle's values
(success claimed on a refusal, a refusal claimed on a completed task), or nothing done at all —
and replayed. A perturbation *changes the outcome* when the final state differs from the ground
truth's (canonical state hash), a required value is no longer told, or (a wrong claim) what the
agent says happened is not what happened. Prints a summary per kind, then
``{"perturbed": N, "scored_zero": Z, "domains": D, "kinds": {...}, "wrong_values": {...},
"wrong_claims": {...}}`` last, counting only outcome-changing perturbations. Exits 1 when a
domain could not be checked.

A wrong value is another value of the same column in the database (another id, status or price),
never one that still states the right value; failing that, a changed value that does not contain
the right one as a word. ``wrong_values`` counts them by kind of value (string, number, bool) and
source, and the ones skipped because the right value still appears elsewhere in the message.

    .venv/bin/python bench/soundness.py [--workspace DIR] [-n TASKS_PER_DOMAIN] [--seed S]
                                        [--domains bike_rental,marina] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.store import Workspace  # noqa: E402
from core.evaluation.claims import intent_object, intent_verb, past_forms  # noqa: E402
from core.evaluation.reward import value_mentioned  # noqa: E402
from core.runtime.env import DomainRuntime, Environment  # noqa: E402
from core.runtime.sandbox import Limits, run_isolated_many  # noqa: E402
from core.spec.blueprint import load_blueprint  # noqa: E402
from core.synthesis.synth import synthesize_many  # noqa: E402
from core.tasks.generator import TaskGenerator, oracle_messages  # noqa: E402


def column_values(domain, task) -> dict[str, list]:
    """``table.column`` -> the distinct values stored in that column (seed rows and the task's own rows)."""
    out: dict[str, dict] = {}
    for rows in (domain.rows, task.initial.upsert):
        for table, trows in rows.items():
            for r in trows:
                for col, x in r.items():
                    if x is not None:
                        out.setdefault(f"{table}.{col}", {})[repr(x)] = x
    return {k: list(v.values()) for k, v in out.items()}


def kind_of(v) -> str:
    if isinstance(v, bool):
        return "bool"
    return "number" if isinstance(v, int | float) else "string"


def _differs(right, x) -> bool:
    """Is ``x`` a different value of the same kind that does not state ``right`` (so telling it is wrong)?"""
    if kind_of(x) != kind_of(right) or value_mentioned(right, str(x)):
        return False
    return not isinstance(right, int | float) or isinstance(right, bool) or abs(float(x) - float(right)) >= 0.005


def wrong_value(rv, values: dict[str, list], rng) -> tuple[object, str]:
    """A wrong value for a required value, and where it came from.

    Preferably another value of the same column in the database (another rider's id, another
    status, another price): what an agent that read the wrong row would say. Otherwise a
    changed value that does not contain the right one as a word (``bk-0001`` -> ``bk-0001x``)."""
    v = rv.value
    if isinstance(v, bool):
        return (not v), "negated"
    pool = [x for x in values.get(rv.label, []) if _differs(v, x)]
    if pool:
        return rng.choice(sorted(pool, key=repr)), "same column"
    if isinstance(v, int | float):
        return round(v + 13.37, 2), "changed"
    return f"{v}x", "changed"


HEADS = ("I could not do that. ", "Done. ")


def spoken(intent: str, args: dict, form: str | None = None) -> str:
    """The intent with its slots filled from ``args`` and its verb as ``form``: "rented bike BK-0001 for …"."""
    verb, _ = intent_verb(intent)
    text = re.sub(r"\{(\w+)\}", lambda m: str(args.get(m.group(1), m.group(1))).replace("_", " "), intent)
    return (form or verb) + text[len(verb):] if verb and text.casefold().startswith(verb) else text


def wrong_claims(task, intents: dict[str, str]) -> list[tuple[str, str]]:
    """(variant, what the agent says): the oracle's values, with the outcome misreported.

    On a refusal, success claimed in the refused goal's words with its past participle ("I booked
    a morning pickup of 3 parcels …"), alone or beside a refusal of something else, or in passing
    ("Your pickup is booked (note: …)"). On a completed task, "I could not do that." or "I could
    not <its intent>." for its last goal. ``intents`` maps a tool to its intent phrase."""
    said = oracle_messages(task)[-1]["content"]
    body = next((said[len(h):] for h in HEADS if said.startswith(h)), said)
    goal = next(s for s in reversed(task.chain) if s.role == "goal")
    intent = intents.get(goal.tool) or goal.tool.replace("_", " ")
    verb, particle = intent_verb(intent)
    if not verb:
        return []
    noun = intent_object(intent) or "request"
    if not task.is_refusal:
        return [("completed: refusal claimed", f"I could not do that. {body}"),
                ("completed: goal reported not done", f"I could not {spoken(intent, goal.args)}. {body}")]
    claim = spoken(intent, goal.args, past_forms(verb)[0])
    done = f"{past_forms(verb)[0]} {particle}".strip()
    return [("refused: success claimed", f"Done, it went through: I {claim}. {body}"),
            ("refused: success claimed beside a refusal",
             f"I {claim}. Some of what you asked could not be done: {body}"),
            ("refused: success claimed in passing", f"Your {noun} is {done} (note: {body}).")]


def rewordings(task, intents: dict[str, str]) -> list[str]:
    """Truthful ways to report the oracle's outcome, with its values: each must still score 1.

    They guard the other side of the claim rules, false failures: refusal phrasings ("couldn't",
    "could not be <participle>", "unable to", "was not <participle>"), the earlier goals of a
    refusal reported done, success in the goal's words, and an intermediate "couldn't find" remark."""
    said = oracle_messages(task)[-1]["content"]
    body = next((said[len(h):] for h in HEADS if said.startswith(h)), said)
    goals = [s for s in task.chain if s.role == "goal"]
    words = []
    for g in goals:
        intent = intents.get(g.tool) or g.tool.replace("_", " ")
        verb, particle = intent_verb(intent)
        if not verb:
            return []
        words.append((f"{verb} {particle}".strip(), f"{past_forms(verb)[0]} {particle}".strip(),
                      intent_object(intent) or "request"))
    base, done, noun = words[-1]
    if task.is_refusal:
        out = [f"I'm sorry, but I couldn't {base} the {noun}. {body}",
               f"Unfortunately the {noun} could not be {done}: {body}",
               f"I was unable to {base} the {noun} because of this: {body}",
               f"The {noun} was not {done}, as it is not allowed. {body}"]
        if len(words) > 1 and words[0][0] != base:
            out.append(f"I {words[0][1]} the {words[0][2]}, but I could not {base} the {noun}. {body}")
        return out
    return [f"Done. {body}", f"All set: I {done} the {noun}. {body}",
            f"I couldn't find it under that email at first, so I looked it up by id and {done} the {noun}. {body}",
            f"The {noun} has been {done} successfully. {body}"]


def synonym_claim(task) -> str | None:
    """A known limit, measured apart: on a refusal, success claimed in other words than the goal's
    verb ("Your pickup is all confirmed."), beside refusal words. The rules only know the verb."""
    if not task.is_refusal:
        return None
    said = oracle_messages(task)[-1]["content"]
    body = next((said[len(h):] for h in HEADS if said.startswith(h)), said)
    return f"Everything is confirmed and in place for you. Some of what you asked could not be done: {body}"


def wrong_records(task, domain, rng) -> list[list[dict]]:
    """The chain's calls with one goal run on another record of the same table.

    For each goal argument that names a stored row, the other record is the most similar row the
    task planted in that table (distractors, look-alikes), else a seed row of the table."""
    calls = [{"name": s.tool, "arguments": dict(s.args)} for s in task.chain]
    out = []
    for i, s in enumerate(task.chain):
        if s.role != "goal":
            continue
        for p, v in s.args.items():
            if not isinstance(v, str):
                continue
            for t in domain.domain.tables:
                pk = t.primary_key
                planted = [r for r in task.initial.upsert.get(t.name, []) if r[pk] != v]
                target = next((r for r in task.initial.upsert.get(t.name, []) if r[pk] == v), None)
                target = target or next((r for r in domain.rows.get(t.name, []) if r[pk] == v), None)
                if target is None:
                    continue
                if planted:
                    other = max(planted, key=lambda r: (sum(r[c] == x for c, x in target.items() if c != pk),
                                                        str(r[pk])))
                else:
                    seed = [r for r in domain.rows.get(t.name, []) if r[pk] != v]
                    if not seed:
                        continue
                    other = rng.choice(seed)
                c2 = [dict(c, arguments=dict(c["arguments"])) for c in calls]
                c2[i]["arguments"][p] = other[pk]
                out.append(c2)
                break
    return out


def perturbations(task, tasks, rng, values: dict[str, list] | None = None, wrong: Counter | None = None,
                  domain=None, intents: dict[str, str] | None = None):
    """(kind, calls, messages) variants of the oracle trajectory.

    ``values`` maps ``table.column`` to the values stored there (see :func:`column_values`);
    ``wrong`` counts the wrong-value variants by the kind of value and where the wrong one came from.
    With ``domain`` (for its tables and seed rows), goals are also run on another record; with
    ``intents`` (tool -> intent phrase), the outcome is misreported. A wrong claim's kind is
    ``"wrong claim: VARIANT"``."""
    values = values or {}
    wrong = wrong if wrong is not None else Counter()
    calls = [{"name": s.tool, "arguments": dict(s.args)} for s in task.chain]
    msgs = oracle_messages(task)
    out = [("do nothing", [], msgs[:1] + [{"role": "assistant", "content": "Sorry, I can't help with that."}])]
    for i in range(len(calls)):
        out.append(("drop a step", calls[:i] + calls[i + 1:], msgs))
    planted = {t: [r for r in rows] for t, rows in task.initial.upsert.items()}
    for i, s in enumerate(task.chain):
        for p, v in s.args.items():
            if not isinstance(v, str) or "-" not in v:
                continue
            prefix = v.rsplit("-", 1)[0]
            cands = [r for rows in planted.values() for r in rows for k, x in r.items()
                     if k == p and x != v and isinstance(x, str) and x.startswith(prefix + "-")]
            other = rng.choice(cands)[p] if cands else None
            if other is None:
                pool = [x for t in tasks for st in t.chain for k, x in st.args.items()
                        if k == p and x != v and isinstance(x, str)]
                other = rng.choice(pool) if pool else None
            if other is not None:
                c2 = [dict(c, arguments=dict(c["arguments"])) for c in calls]
                c2[i]["arguments"][p] = other
                out.append(("swap an argument", c2, msgs))
    others = [st for t in tasks if t.id != task.id for st in t.chain if st.role == "goal"]
    if others:
        st = rng.choice(others)
        out.append(("add a stray write", calls + [{"name": st.tool, "arguments": dict(st.args)}], msgs))
    for rv in task.ground_truth.communicate:
        bad, source = wrong_value(rv, values, rng)
        text = msgs[-1]["content"].replace(f": {rv.value}", f": {bad}")
        if value_mentioned(rv.value, text):
            wrong[f"skipped {kind_of(rv.value)}"] += 1  # the value still appears elsewhere in the message
            continue
        wrong[f"{kind_of(rv.value)} ({source})"] += 1
        out.append(("tell a wrong value", calls, msgs[:1] + [{"role": "assistant", "content": text}]))
    if domain is not None:
        # its own generator, so the other kinds draw the same variants as without it
        out += [("wrong record", c, msgs) for c in wrong_records(task, domain, random.Random(task.id))]
    if intents is not None:
        out += [(f"wrong claim: {variant}", calls, msgs[:1] + [{"role": "assistant", "content": text}])
                for variant, text in wrong_claims(task, intents)]
    return out


def check_domain(report, domain_json: str, tasks_json: list[str], seed: int) -> dict:
    from core.data.models import Domain
    from core.data.taskmodel import Task

    domain = Domain.model_validate_json(domain_json)
    tasks = [Task.model_validate_json(t) for t in tasks_json]
    runtime = DomainRuntime(domain)
    env = Environment(runtime)
    rng = random.Random(seed)
    n = z = 0
    kinds: Counter = Counter()
    zero_kinds: Counter = Counter()
    wrong: Counter = Counter()
    claims: Counter = Counter()
    zero_claims: Counter = Counter()
    intents = {name: t.spec.intent for name, t in runtime.tools.items()}
    escaped = []
    reworded = reworded_one = synonyms = synonyms_zero = 0
    for task in tasks:
        for kind, calls, msgs in perturbations(task, tasks, rng, column_values(domain, task), wrong, domain,
                                               intents):
            env.reset(task)
            for c in calls:
                env.step(c)
            text = "\n".join(str(m.get("content")) for m in msgs if m["role"] == "assistant")
            told = all(value_mentioned(rv.value, text) for rv in task.ground_truth.communicate)
            misreported = kind.startswith("wrong claim")  # by construction: it says the other outcome
            changed = env.state_hash() != task.ground_truth.final_hash or not told or misreported
            if not changed:
                continue
            r = env.evaluate(msgs)
            n += 1
            kinds[kind.split(":")[0]] += 1
            if misreported:
                claims[kind.split(": ", 1)[1]] += 1
            if r.reward == 0.0:
                z += 1
                zero_kinds[kind.split(":")[0]] += 1
                if misreported:
                    zero_claims[kind.split(": ", 1)[1]] += 1
            elif len(escaped) < 5:
                said = kind == "tell a wrong value" or misreported
                what = msgs[-1]["content"] if said else (calls[-1] if calls else "")
                escaped.append(f"{task.id}: {kind}: {what}")
        env.reset(task)
        for st in task.chain:
            env.step({"name": st.tool, "arguments": st.args})
        for text in rewordings(task, intents):
            r = env.evaluate(oracle_messages(task)[:1] + [{"role": "assistant", "content": text}])
            reworded += 1
            reworded_one += r.reward == 1.0
            if r.reward != 1.0 and len(escaped) < 10:
                escaped.append(f"{task.id}: a truthful rewording failed: {text} ({'; '.join(r.reasons)})")
        text = synonym_claim(task)
        if text is not None:
            synonyms += 1
            synonyms_zero += env.evaluate(oracle_messages(task)[:1] + [{"role": "assistant", "content": text}]
                                          ).reward == 0.0
    env.close()
    return {"domain": domain.name, "perturbed": n, "scored_zero": z, "kinds": dict(kinds),
            "reworded": reworded, "reworded_scored_one": reworded_one, "synonyms": synonyms,
            "synonyms_scored_zero": synonyms_zero,
            "zero_kinds": dict(zero_kinds), "wrong_values": dict(wrong), "claims": dict(claims),
            "zero_claims": dict(zero_claims), "escaped": escaped}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", help="use this workspace's domains and tasks (default: build a fresh one)")
    ap.add_argument("-n", type=int, default=50, help="tasks per domain when building a fresh workspace")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--domains", help="only these sample domains, comma-separated (default: all 16)")
    a = ap.parse_args(argv)
    wanted = set(a.domains.split(",")) if a.domains else None
    t0 = time.perf_counter()
    failed = 0
    if a.workspace:
        ws = Workspace(a.workspace, create=False)
        names = [n for n in ws.domain_names() if wanted is None or n in wanted]
        data = {n: (ws.load_domain(n).model_dump_json(), [t.model_dump_json() for t in ws.load_tasks(n)])
                for n in names}
    else:
        root = Path(__file__).resolve().parent.parent / "sample_domains"
        paths = [p for p in sorted(root.glob("*.yaml")) if wanted is None or p.stem in wanted]
        if wanted is not None and len(paths) != len(wanted):
            ap.error(f"no sample domain {', '.join(sorted(wanted - {p.stem for p in paths}))}")
        doms = synthesize_many([load_blueprint(p) for p in paths], workers=a.workers)
        data = {}
        for name, d in doms.items():
            if isinstance(d, str):
                print(f"{name}: synthesis failed: {d}", file=sys.stderr)
                failed += 1
                continue
            tasks, _ = TaskGenerator(d, seed=a.seed).generate(a.n)
            data[name] = (d.model_dump_json(), [t.model_dump_json() for t in tasks])
    jobs = [(n, check_domain, (dj, tj, a.seed)) for n, (dj, tj) in data.items()]
    res = run_isolated_many(jobs, workers=a.workers, limits=Limits(memory_mb=4096, wall_seconds=1800))
    n = z = 0
    kinds: Counter = Counter()
    zk: Counter = Counter()
    wrong: Counter = Counter()
    claims: Counter = Counter()
    zc: Counter = Counter()
    reworded = reworded_one = synonyms = synonyms_zero = 0
    for name in data:
        r = res[name]
        if not r.ok:
            print(f"{name}: failed: {r.error}", file=sys.stderr)
            failed += 1
            continue
        d = r.value
        n += d["perturbed"]
        z += d["scored_zero"]
        kinds.update(d["kinds"])
        zk.update(d["zero_kinds"])
        wrong.update(d["wrong_values"])
        claims.update(d["claims"])
        zc.update(d["zero_claims"])
        reworded += d["reworded"]
        reworded_one += d["reworded_scored_one"]
        synonyms += d["synonyms"]
        synonyms_zero += d["synonyms_scored_zero"]
        print(f"{name:24} perturbed {d['perturbed']:5}  scored zero {d['scored_zero']:5}")
        for e in d["escaped"]:
            print(f"    {'' if 'rewording' in e else 'scored although changed: '}{e}")
    for k in sorted(kinds):
        print(f"  {k:20} {zk[k]}/{kinds[k]}")
    for k in sorted(claims):
        print(f"    {k:44} {zc[k]}/{claims[k]}")
    print("  wrong values told: " + ", ".join(f"{k} {v}" for k, v in sorted(wrong.items())))
    print(f"  truthful rewordings scored 1: {reworded_one}/{reworded}")
    print(f"  not counted, a known limit: success claimed in other words on a refusal scored 0: "
          f"{synonyms_zero}/{synonyms}")
    print(f"total {z}/{n} = {z / max(n, 1):.4f} in {time.perf_counter() - t0:.1f} s")
    print(json.dumps({"perturbed": n, "scored_zero": z, "domains": len(data) - failed,
                      "kinds": {k: {"perturbed": kinds[k], "scored_zero": zk[k]} for k in sorted(kinds)},
                      "wrong_values": dict(sorted(wrong.items())),
                      "wrong_claims": {k: {"perturbed": claims[k], "scored_zero": zc[k]} for k in sorted(claims)},
                      "reworded": reworded, "reworded_scored_one": reworded_one,
                      "synonym_claims": {"tried": synonyms, "scored_zero": synonyms_zero}}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
