"""Task validity: do generated tasks read like requests a real user would make, and may they be served?

Measures what the "valid tasks" work has to fix (the numbers are expected to be bad today):

- ``foreign_row_goals``: tasks with a persona (a customer acting for themself) where some goal acts
  on a row owned by another customer. A refused goal does not count (refusing it is right).
- ``anonymous_on_owned_rows``: tasks with no persona whose goals (the refused one included) act on
  rows some customer owns: the policies say to identify the customer first.
- ``staff_ops_as_customer_goals``: operations no customer would ask for, as the goal of a customer's
  task. ``null`` while the blueprints do not say who may ask for an operation (an ``actor`` or
  ``who`` field on every business operation of a domain).
- ``invariant_violations``: (row, invariant) pairs that do not hold in a task's initial state and in
  its final state (the chain replayed), stated and derived (``core/data/invariants.py``); ``null`` while a
  domain's blueprint states no table ``invariants``.
- ``unrequested_values`` (and ``unrequested_values_tasks``): values the agent must tell
  (``ground_truth.communicate``) that the first message does not ask for.
- ``refusal_auc``: how well a word 1-2-gram naive Bayes predicts a refusal from the first message
  alone, 5-fold stratified cross-validation, ROC AUC of the out-of-fold scores (0.5: refusals read
  like every other request).
- ``min_openings_per_domain`` and ``openings``: distinct openings of the first message per domain.

How each is decided:

- **Ownership** comes from reference paths, as ``core/tasks/ownership.py`` derives them for task
  generation too. The customer table is ``core.tasks.ownership.customer_table`` (the first with a unique
  email and a name column). From a table T, follow ``ref`` columns (no table twice) to the customer
  table; only the shortest such paths count (all of them when several tie). A row is owned by the
  customers those paths reach from it (the customer table's own rows by themselves); a table with
  no path, or a row whose path ends in a null, is unowned.
- **The rows a goal acts on**: each goal parameter whose ``ParamSpec.column`` is an ``id`` column
  (that table's row) or a ``ref`` column (the referenced table's row): ``core.tasks.ownership.key_params``. The chain is replayed from
  the initial state (``DomainRuntime.build_db(task.initial)``), and each goal's rows are read in
  the state just before that goal runs, so a row an earlier goal created is resolved too (a key
  with no row there is skipped).
- **The persona**: the email in ``scenario.persona`` ("NAME, a rider with email E"; else
  ``scenario.known``'s email) picks the customer row with that email in the initial state. A task
  has a persona when its domain has a customer table and its scenario gives such an email.
- **"Asked for"**: a required value is asked for when the words of its label's column
  (``riders.balance`` -> "balance", ``rentals.rental_id`` -> "rental id") appear as whole words in a
  sentence of the first message after "tell me". "Tell me exactly what is blocking it" names no
  value, so a refusal's blocker is never asked for today.
- **Openings**: the first sentence of the first message after replacing the persona's name and
  email, the goal text (``scenario.goal``, when it appears word for word) and every number or id
  by placeholders. Without the goal placeholder, a request with no greeting would count its own
  content as an opening; that variant is also reported per domain as ``openings_literal``.

Prints one line per domain, then ``{"tasks": N, "foreign_row_goals": ..., ...}`` last.

    .venv/bin/python bench/validity.py [--workspace DIR] [--n 100] [--domains bike_rental,marina]

Without ``--workspace`` it makes a fresh temporary workspace with the CLI (``scaleenv synth``, then
``scaleenv tasks generate -n N``) from the sample domains.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data.invariants import Invariants  # noqa: E402
from core.data.models import Domain, Table  # noqa: E402
from core.data.store import Workspace  # noqa: E402
from core.runtime.context import ToolContext  # noqa: E402
from core.runtime.env import DomainRuntime  # noqa: E402
from core.tasks.ownership import customer_table, owner_paths, row_owners  # noqa: E402
from core.tasks.ownership import key_params as _key_params  # noqa: E402

ANONYMOUS = "someone who does not give their name"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"\b[\w-]*\d[\w-]*(?:\.\d+)?\b")  # ids, dates, amounts: RNT-0023, 2026-04-01, 22.8
_SENTENCE_END = re.compile(r"[.?!](?:\s|$)")


# ---------------------------------------------------------------------------------------- ownership

def key_params(runtime: DomainRuntime, tool: str) -> list[tuple[str, str]]:
    """(parameter, table of the row it names) for a tool's id/ref parameters (``core.tasks.ownership.key_params``)."""
    tool_rec = runtime.tools.get(tool)
    return _key_params(runtime.schema, tool_rec.spec) if tool_rec else []


def is_staff(task: Any) -> bool:
    """A member of staff asks (``scenario.actor``): the policy lets staff act on any customer's records."""
    return getattr(task.scenario, "actor", "customer") == "staff"


def persona_email(task: Any, email_col: str | None) -> str | None:
    if email_col is None or task.scenario.persona == ANONYMOUS or is_staff(task):
        return None
    m = re.search(r"with email (\S+)$", task.scenario.persona)
    if m:
        return m.group(1)
    v = task.scenario.known.get(email_col)
    return v if isinstance(v, str) and "@" in v else None


# ---------------------------------------------------------------------------------------- asked for

ASK_CUES = r"\b(?:tell me|let me know|like to know|want to know|need to know|what (?:is|are|was|were|will))\b"


def asked_segments(instruction: str) -> list[str]:
    """The parts of the message that ask for something: from each cue ("tell me", "let me know",
    "I'd like to know", "what is") to the end of its sentence."""
    low = instruction.lower()
    out = []
    for m in re.finditer(ASK_CUES, low):
        rest = low[m.end():]
        end = _SENTENCE_END.search(rest)
        out.append(rest[:end.start()] if end else rest)
    return out


def label_words(label: str, schema: Any = None) -> set[str]:
    """How a value's label can be said: its column's name with spaces, and the blueprint's ``labels``
    noun for the column when there is one."""
    table, _, col = label.rpartition(".")
    words = {col.replace("_", " ").lower().strip()}
    if schema is not None and schema.has_table(table) and schema.table(table).has_column(col):
        words.add(schema.table(table).column(col).noun.lower())
    return words


def asked_for(label: str, instruction: str, schema: Any = None) -> bool:
    pats = [re.compile(r"(?<!\w)" + re.escape(w) + r"(?!\w)") for w in label_words(label, schema)]
    return any(p.search(s) for s in asked_segments(instruction) for p in pats)


def policy_demands_blocker(policy: str) -> bool:
    """Whether the agent's policy says to tell what blocks a request that cannot be done
    (core/runtime/policy.py's refusal clause, or a blueprint policy line saying the same)."""
    low = policy.lower()
    return "cannot be done" in low and "blocks" in low


# ---------------------------------------------------------------------------------------- refusal AUC

def tokens(text: str) -> list[str]:
    """Lowercased words and word pairs; emails and anything with a digit become placeholders."""
    t = _EMAIL.sub(" xemailx ", text.lower())
    t = _NUMBER.sub(" xnumx ", t)
    words = re.findall(r"[a-z']+", t)
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def train_nb(docs: list[list[str]], labels: list[int], alpha: float = 1.0):
    """Multinomial naive Bayes with Laplace smoothing; returns score(doc) = log-odds of label 1."""
    counts = [Counter(), Counter()]
    ndocs = [0, 0]
    for d, y in zip(docs, labels, strict=True):
        counts[y].update(d)
        ndocs[y] += 1
    vocab = set(counts[0]) | set(counts[1])
    totals = [sum(c.values()) + alpha * (len(vocab) + 1) for c in counts]
    prior = math.log((ndocs[1] + 1) / (ndocs[0] + 1))

    def score(doc: list[str]) -> float:
        s = prior
        for w in doc:
            s += math.log((counts[1][w] + alpha) / totals[1]) - math.log((counts[0][w] + alpha) / totals[0])
        return s

    return score


def auc(scores: list[float], labels: list[int]) -> float | None:
    """ROC AUC by Mann-Whitney U: the chance a positive outscores a negative (ties count half)."""
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # average rank of the tie group, 1-based
        i = j + 1
    rank_pos = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_pos - pos * (pos + 1) / 2) / (pos * neg)


def cv_auc(texts: list[str], labels: list[int], folds: int = 5, seed: int = 0) -> float | None:
    """Out-of-fold naive Bayes scores, stratified folds, fixed seed; their ROC AUC."""
    if len(set(labels)) < 2:
        return None
    rng = random.Random(seed)
    fold = [0] * len(labels)
    for cls in (0, 1):
        idx = [i for i, y in enumerate(labels) if y == cls]
        rng.shuffle(idx)
        for n, i in enumerate(idx):
            fold[i] = n % folds
    docs = [tokens(t) for t in texts]
    scores = [0.0] * len(labels)
    for f in range(folds):
        train = [i for i in range(len(labels)) if fold[i] != f]
        test = [i for i in range(len(labels)) if fold[i] == f]
        if not test:
            continue
        score = train_nb([docs[i] for i in train], [labels[i] for i in train])
        for i in test:
            scores[i] = score(docs[i])
    a = auc(scores, labels)
    return None if a is None else round(a, 4)


# ---------------------------------------------------------------------------------------- openings

def opening(task: Any, name: str | None, email: str | None, with_goal: bool = True) -> str:
    text = task.scenario.instruction
    if with_goal and task.scenario.goal and task.scenario.goal in text:
        text = text.replace(task.scenario.goal, "<goal>", 1)
    if email:
        text = text.replace(email, "<email>")
    text = _EMAIL.sub("<email>", text)
    if name:
        text = text.replace(name, "<name>")
    text = _NUMBER.sub("<n>", text)
    end = _SENTENCE_END.search(text)
    return (text[:end.start() + 1] if end else text).strip()


# ---------------------------------------------------------------------------------------- one domain

def blueprint_doc(domain: Domain) -> dict:
    try:
        doc = yaml.safe_load(domain.blueprint_text or "") or {}
    except yaml.YAMLError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def staff_only_ops(doc: dict, customer: Table | None) -> set[str] | None:
    """Operations the blueprint says a customer does not ask for; None when it does not say for every one."""
    ops = doc.get("operations") or {}
    if not isinstance(ops, dict) or not ops:
        return None
    marks = {}
    for name, op in ops.items():
        if not isinstance(op, dict) or not ({"actor", "who"} & set(op)):
            return None
        v = op.get("actor", op.get("who"))
        marks[name] = {str(x).lower() for x in (v if isinstance(v, list) else [v])}
    cust = {"customer", "either", "any", "anyone", "both", "user"}
    if customer is not None:
        cust |= {customer.name.lower(), customer.singular.lower()}
    return {name for name, who in marks.items() if not (who & cust)}


def scan_domain(domain: Domain, tasks: list) -> dict:
    schema = domain.domain
    runtime = DomainRuntime(domain)
    ctx = ToolContext(schema.clock)
    cust = customer_table(schema)
    paths = owner_paths(schema, cust.name if cust else None)
    email_col = next((c.name for c in cust.columns if c.type == "email" and c.unique), None) if cust else None
    name_col = next((c.name for c in cust.columns if c.type == "name"), None) if cust else None
    doc = blueprint_doc(domain)
    staff = staff_only_ops(doc, cust)
    has_invariants = any(t.invariants for t in schema.tables)
    demands_blocker = policy_demands_blocker(runtime.policy)

    r: dict[str, Any] = {"tasks": len(tasks), "with_persona": 0, "persona_not_found": 0, "foreign_row_goals": 0,
                         "anonymous_on_owned_rows": 0,
                         "staff_ops_as_customer_goals": None if staff is None else 0,
                         "invariant_violations": 0 if has_invariants else None,
                         "invariants_declared": has_invariants,
                         "unrequested_values": 0, "unrequested_values_tasks": 0, "values": 0}
    examples: list[str] = []
    inv_examples: list[str] = []
    # stated and derived (core/data/invariants.py); measured once a blueprint of the domain states some
    invariants = Invariants.for_domain(domain) if has_invariants else None
    texts, labels = [], []
    openings, literal = set(), set()
    for task in tasks:
        texts.append(task.scenario.instruction)
        labels.append(int(task.ground_truth.outcome == "refused"))
        email = persona_email(task, email_col)
        db = runtime.build_db(task.initial)
        persona_id = name = None
        if email is not None:
            r["with_persona"] += 1
            rows = db.select(cust.name, **{email_col: email})
            if rows:
                persona_id, name = rows[0][cust.primary_key], rows[0][name_col]
            else:
                r["persona_not_found"] += 1
        if invariants is not None:  # the initial state
            bad = invariants.violations(db, ctx)
            r["invariant_violations"] += len(bad)
            if bad and len(inv_examples) < 5:
                inv_examples.append(f"{task.id} initial: {bad[0]}")
        openings.add(opening(task, name, email))
        literal.add(opening(task, name, email, with_goal=False))

        foreign, anon, staff_goal, staff_task = [], False, False, is_staff(task)
        refused = task.ground_truth.outcome == "refused"
        for step in task.chain:
            if step.role != "goal":
                continue
            is_refused = refused and step.expect == "precondition"
            if staff and email is not None and step.tool in staff:
                staff_goal = True
            for p, table in key_params(runtime, step.tool):
                key = step.args.get(p)
                if key is None:
                    continue
                owners = row_owners(db, paths, table, key)
                if not owners:
                    continue
                if email is None:
                    anon = anon or not staff_task
                elif persona_id is not None and persona_id not in owners and not is_refused:
                    foreign.append(f"{step.tool}({p}={key}) is {', '.join(map(str, sorted(owners)))}'s")
            if not is_refused:
                runtime.call(db, ctx, step.tool, step.args)  # the next goal sees this one's rows
        if invariants is not None:  # the final state: the chain replayed (a refused goal changes nothing)
            bad = invariants.violations(db, ctx)
            r["invariant_violations"] += len(bad)
            if bad and len(inv_examples) < 5:
                inv_examples.append(f"{task.id} final: {bad[0]}")
        db.close()
        if foreign:
            r["foreign_row_goals"] += 1
            if len(examples) < 5:
                examples.append(f"{task.id}: persona {persona_id}: {'; '.join(foreign)}")
        r["anonymous_on_owned_rows"] += anon
        if staff is not None:
            r["staff_ops_as_customer_goals"] += staff_goal
        missing = [v for v in task.ground_truth.communicate
                   if not asked_for(v.label, task.scenario.instruction, schema)
                   and not (v.why == "what blocks the request" and demands_blocker)]
        r["values"] += len(task.ground_truth.communicate)
        r["unrequested_values"] += len(missing)
        r["unrequested_values_tasks"] += bool(missing)
    r["refusals"] = sum(labels)
    r["refusal_auc"] = cv_auc(texts, labels)
    r["openings"] = len(openings)
    r["openings_literal"] = len(literal)
    r["foreign_examples"] = examples
    r["invariant_examples"] = inv_examples
    r["_texts"], r["_labels"] = texts, labels  # for the pooled AUC; not printed
    return r


# ---------------------------------------------------------------------------------------- driver

class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"validity: error: {message}", file=sys.stderr)
        sys.exit(2)


def scaleenv_cmd() -> list[str]:
    exe = shutil.which("scaleenv", path=str(Path(sys.executable).parent)) or shutil.which("scaleenv")
    return [exe] if exe else [sys.executable, "-c", "import sys; from scaleenv_tui.cli import main; sys.exit(main())"]


def fresh_workspace(ws: Path, n: int, domains: list[str] | None) -> None:
    cmd = scaleenv_cmd()
    what = [str(ROOT / "sample_domains" / f"{d}.yaml") for d in domains] if domains else ["--all"]
    for args in (["synth", *what], ["tasks", "generate", *(domains or ["--all"]), "-n", str(n)]):
        p = subprocess.run([*cmd, *args, "--workspace", str(ws), "--json"], capture_output=True, text=True,
                           cwd=ROOT)
        if p.returncode != 0:
            err = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"scaleenv {' '.join(args[:2])} exited {p.returncode}: {err}")


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="validity", description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", help="scan this workspace's domains and tasks (default: build a fresh one)")
    ap.add_argument("--n", "-n", type=int, default=100, help="tasks per domain when building a fresh workspace")
    ap.add_argument("--domains", help="only these domains, comma-separated (default: all)")
    a = ap.parse_args(argv)
    if a.n < 1:
        ap.error(f"argument --n: must be at least 1, got {a.n}")
    wanted = [d for d in a.domains.split(",") if d] if a.domains is not None else None
    if wanted is not None and not wanted:
        ap.error("argument --domains: no domain named")
    t0 = time.perf_counter()
    tmp = None
    try:
        if a.workspace:
            try:
                ws = Workspace(a.workspace, create=False)
                names = ws.domain_names()
            except Exception as e:  # a missing or damaged workspace
                ap.error(f"cannot open workspace {a.workspace}: {str(e).splitlines()[0] if str(e) else e}")
        else:
            samples = sorted(p.stem for p in (ROOT / "sample_domains").glob("*.yaml"))
            if wanted is not None and set(wanted) - set(samples):
                ap.error(f"no sample domain {', '.join(sorted(set(wanted) - set(samples)))}")
            tmp = tempfile.mkdtemp(prefix="scaleenv-validity-")
            try:
                fresh_workspace(Path(tmp), a.n, wanted)
            except RuntimeError as e:
                print(f"validity: error: {e}", file=sys.stderr)
                return 1
            ws = Workspace(tmp, create=False)
            names = ws.domain_names()
        if wanted is not None:
            missing = sorted(set(wanted) - set(names))
            if missing:
                ap.error(f"no domain {', '.join(missing)} in the workspace")
            names = [n for n in names if n in wanted]
        per: dict[str, dict] = {}
        for name in names:
            d = scan_domain(ws.load_domain(name), ws.load_tasks(name))
            per[name] = d
            auc_s = "n/a" if d["refusal_auc"] is None else f"{d['refusal_auc']:.3f}"
            print(f"{name:22} tasks {d['tasks']:4}  foreign-row goals {d['foreign_row_goals']:3}/"
                  f"{d['with_persona']:<3} anonymous on owned rows {d['anonymous_on_owned_rows']:3}/"
                  f"{d['tasks'] - d['with_persona']:<3} unrequested values {d['unrequested_values']:3}/{d['values']:<3}"
                  f" ({d['unrequested_values_tasks']} tasks)  refusal AUC {auc_s}  openings {d['openings']}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    def total(key: str) -> int | None:
        vals = [d[key] for d in per.values()]
        return None if not vals or any(v is None for v in vals) else sum(vals)

    texts = [t for d in per.values() for t in d.pop("_texts")]
    labels = [y for d in per.values() for y in d.pop("_labels")]
    examples = [e for d in per.values() for e in d["foreign_examples"][:2]]
    out: dict[str, Any] = {
        "tasks": sum(d["tasks"] for d in per.values()),
        "foreign_row_goals": total("foreign_row_goals"),
        "anonymous_on_owned_rows": total("anonymous_on_owned_rows"),
        "staff_ops_as_customer_goals": total("staff_ops_as_customer_goals"),
        "invariant_violations": total("invariant_violations"),
        "unrequested_values": total("unrequested_values"),
        "unrequested_values_tasks": total("unrequested_values_tasks"),
        "refusal_auc": cv_auc(texts, labels),  # every task of every domain in one cross-validation
        "min_openings_per_domain": min((d["openings"] for d in per.values()), default=None),
        "openings": {n: d["openings"] for n, d in per.items()},
        "per_domain": per,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if out["staff_ops_as_customer_goals"] is None:
        print("staff_ops_as_customer_goals: null: no blueprint says who may ask for each operation "
              "(no actor/who field on its operations)")
    if out["invariant_violations"] is None:
        undeclared = [n for n, d in per.items() if not d["invariants_declared"]]
        print(f"invariant_violations: null: no invariants stated in {', '.join(undeclared)}")
    for d in per.values():
        for e in d["invariant_examples"][:2]:
            print(f"  invariant violation: {e}")
    for e in examples[:6]:
        print(f"  foreign-row goal: {e}")
    print(f"total: {out['tasks']} tasks, foreign-row goals {out['foreign_row_goals']}, anonymous on owned rows "
          f"{out['anonymous_on_owned_rows']}, unrequested values {out['unrequested_values']} "
          f"({out['unrequested_values_tasks']} tasks), refusal AUC {out['refusal_auc']}, "
          f"openings per domain (min) {out['min_openings_per_domain']}, {out['seconds']} s")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
