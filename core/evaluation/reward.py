"""Rule-based rewards: the final database against the ground truth, and the values told to the user.

Only rows written by the agent or by the ground-truth chain can differ from the initial state,
so only those are compared. Each column has a policy:

* **exempt** — generated ids (primary keys of inserted rows) and timestamps (``datetime`` columns);
* **exact** — numbers (money to the cent), enums, references, dates, booleans;
* **normalized** — free text (case, spacing and punctuation ignored).

Inserted rows are matched to the expected ones as a multiset, with references to inserted rows
followed through the matching, so creating rows in another order still scores. What the agent
claims is checked too, by rules over its words (:func:`check_claims`): on a refusal it must say the
request could not be done and must not claim the refused goal was done; on a completed task it
must not report a goal as not done. The reward is 1 when every table matches, every required
value appears in the agent's messages and the claims hold, else 0, and the reasons are kept per
table, row and column.
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from core.data.models import Column, DomainSchema, Model
from core.data.seed import table_order
from core.evaluation.claims import check_claims, claim_rules

TEXT_TYPES = {"name", "first_name", "last_name", "text", "word", "company", "address", "city", "string", "email",
              "phone", "code"}


class RequiredValue(Model):
    value: Any
    label: str  # what it is, e.g. "rentals.cost"
    why: str = ""


class Reward(Model):
    reward: float
    state_ok: bool
    communicated_ok: bool
    claims_ok: bool = True  # what the agent said about the outcome (see check_claims); True when not checked
    reasons: list[str] = Field(default_factory=list)
    mismatches: list[dict[str, Any]] = Field(default_factory=list)  # {table, row, column, expected, actual}
    missing_values: list[RequiredValue] = Field(default_factory=list)


def norm_text(v: Any) -> str:
    s = unicodedata.normalize("NFKC", str(v)).casefold()
    s = re.sub(r"[^\w\s@.-]", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def _policy(col: Column, is_pk_of_insert: bool) -> str:
    if is_pk_of_insert or col.type == "datetime":
        return "exempt"
    if col.type in TEXT_TYPES:
        return "normalized"
    return "exact"


def values_equal(col: Column, expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if col.type in ("money", "float"):
        try:
            return abs(float(expected) - float(actual)) < 0.005
        except (TypeError, ValueError):
            return False
    if col.type in TEXT_TYPES:
        return norm_text(expected) == norm_text(actual)
    return expected == actual


class Expected(Model):
    """The ground truth's changes to the initial state, per table."""

    inserted: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    updated: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)  # table -> key -> full row after
    deleted: dict[str, list[Any]] = Field(default_factory=dict)


def expected_from(before: dict[str, dict[Any, dict | None]], current: Any) -> Expected:
    """Build :class:`Expected` from a DomainDB's undo log after the ground truth ran on it."""
    exp = Expected()
    for table, pre in before.items():
        for key, old in pre.items():
            now = current.get(table, key)
            if old is None and now is not None:
                exp.inserted.setdefault(table, []).append(now)
            elif old is not None and now is None:
                exp.deleted.setdefault(table, []).append(key)
            elif old is not None and now is not None and now != old:
                exp.updated.setdefault(table, {})[str(key)] = now
    return exp


_ORDERS: dict[int, tuple[weakref.ref, list]] = {}


def _order(schema: DomainSchema) -> list:
    """Tables in reference order, computed once per schema object (held weakly)."""
    key = id(schema)
    hit = _ORDERS.get(key)
    if hit is None or hit[0]() is not schema:
        hit = _ORDERS[key] = (weakref.ref(schema), table_order(schema))
        weakref.finalize(schema, _ORDERS.pop, key, None)
    return hit[1]


def _ref_equal(col: Column, exp: Any, act: Any, idmap: dict[Any, Any]) -> bool:
    if col.type == "ref" and exp in idmap:
        return idmap[exp] == act
    return values_equal(col, exp, act)


def _new_rows(schema: DomainSchema, db: Any, expected: Expected) -> list[tuple[Any, list, list, list]]:
    """Per table (in reference order): compared columns, expected and actual inserted rows."""
    out = []
    for t in _order(schema):
        pre = db.before.get(t.name, {})
        gold = expected.inserted.get(t.name, [])
        actual = [r for k, old in pre.items() if old is None and (r := db.get(t.name, k)) is not None]
        if gold or actual:
            cols = [c for c in t.columns if _policy(c, c.name == t.primary_key) != "exempt"]
            out.append((t, cols, gold, actual))
    return out


def _matchings(tables: list, i: int, idmap: dict[Any, Any]):
    """Every way to pair expected with actual inserted rows (depth first), as id maps."""
    if i == len(tables):
        yield dict(idmap)
        return
    t, cols, gold, actual = tables[i]
    if len(gold) != len(actual):
        return
    pk = t.primary_key

    def assign(j: int, used: set[int]):
        if j == len(gold):
            yield from _matchings(tables, i + 1, idmap)
            return
        g = gold[j]
        for n, a in enumerate(actual):
            if n not in used and all(_ref_equal(c, g[c.name], a[c.name], idmap) for c in cols):
                idmap[g[pk]] = a[pk]
                used.add(n)
                yield from assign(j + 1, used)
                used.discard(n)
                del idmap[g[pk]]

    yield from assign(0, set())


def _greedy_new(tables: list, idmap: dict[Any, Any]) -> tuple[list[str], list[dict]]:
    """First-fit pairing of inserted rows, with reasons for what does not pair (diagnostics)."""
    reasons: list[str] = []
    mism: list[dict] = []
    for t, cols, gold, actual in tables:
        pk = t.primary_key
        unmatched = list(actual)
        for g in gold:
            hit = next((a for a in unmatched if all(_ref_equal(c, g[c.name], a[c.name], idmap) for c in cols)),
                       None)
            if hit is None:
                best = min(unmatched, default=None,
                           key=lambda a: sum(not _ref_equal(c, g[c.name], a[c.name], idmap) for c in cols))
                diffs = [] if best is None else [
                    {"table": t.name, "row": f"new row like {g[pk]}", "column": c.name, "expected": g[c.name],
                     "actual": best[c.name]} for c in cols if not _ref_equal(c, g[c.name], best[c.name], idmap)]
                reasons.append(f"{t.name}: an expected new row is missing"
                               + (f" (closest differs in {', '.join(d['column'] for d in diffs)})" if diffs else ""))
                mism += diffs or [{"table": t.name, "row": "new row", "column": "*", "expected": g, "actual": None}]
            else:
                unmatched.remove(hit)
                idmap[g[pk]] = hit[pk]
        for a in unmatched:
            reasons.append(f"{t.name}: unexpected new row {a[pk]}")
            mism.append({"table": t.name, "row": a[pk], "column": "*", "expected": None, "actual": a})
    return reasons, mism


def _existing_rows(schema: DomainSchema, db: Any, expected: Expected, idmap: dict[Any, Any]
                   ) -> tuple[list[str], list[dict]]:
    """Rows that existed before, written by the agent or by the ground truth."""
    reasons: list[str] = []
    mism: list[dict] = []
    for t in schema.tables:
        pk = t.primary_key
        pre = db.before.get(t.name, {})
        upd = expected.updated.get(t.name, {})
        dele = set(map(str, expected.deleted.get(t.name, [])))
        keys = {k for k, old in pre.items() if old is not None} | set(upd) | dele
        for key in sorted(keys, key=str):
            actual = db.get(t.name, key)
            if str(key) in dele:
                if actual is not None:
                    reasons.append(f"{t.name}[{key}]: should have been deleted")
                    mism.append({"table": t.name, "row": key, "column": "*", "expected": None, "actual": "row"})
                continue
            exp = upd.get(str(key))
            if exp is None:
                exp = pre.get(key)
            if exp is None:
                continue
            if actual is None:
                reasons.append(f"{t.name}[{key}]: row was deleted")
                mism.append({"table": t.name, "row": key, "column": "*", "expected": "row", "actual": None})
                continue
            for c in t.columns:
                if _policy(c, False) == "exempt" or c.name == pk:
                    continue
                if not _ref_equal(c, exp[c.name], actual[c.name], idmap):
                    reasons.append(f"{t.name}[{key}].{c.name}: expected {exp[c.name]!r}, got {actual[c.name]!r}")
                    mism.append({"table": t.name, "row": key, "column": c.name, "expected": exp[c.name],
                                 "actual": actual[c.name]})
    return reasons, mism


MAX_PAIRINGS = 200


def compare_state(schema: DomainSchema, db: Any, expected: Expected) -> tuple[list[str], list[dict]]:
    """Compare the rows the agent or the ground truth wrote. Returns (reasons, mismatches).

    Inserted rows are paired with the expected ones by content (generated ids and timestamps
    aside), following references between inserted rows through the pairing. When identical new
    rows could pair several ways, each pairing is tried (up to ``MAX_PAIRINGS``) so a correct
    state is never failed by an unlucky first choice."""
    tables = _new_rows(schema, db, expected)
    if tables:
        for n, idmap in enumerate(_matchings(tables, 0, {})):
            if not _existing_rows(schema, db, expected, idmap)[1]:
                return [], []
            if n + 1 >= MAX_PAIRINGS:
                break
    idmap: dict[Any, Any] = {}
    reasons, mism = _greedy_new(tables, idmap)
    more_reasons, more = _existing_rows(schema, db, expected, idmap)
    return reasons + more_reasons, mism + more


# a number standing on its own: not digits inside ids (RNT-0061), dates (2026-04-01) or phones
_NUMBER = re.compile(r"(?<![\w.\-])-?\d[\d,]*(?:\.\d+)?(?!\w|\.\d|-\d)")


def value_mentioned(value: Any, text: str) -> bool:
    """Is ``value`` stated in ``text``? Numbers in any usual format, words case-insensitively."""
    if isinstance(value, bool):
        words = re.findall(r"\w+", text.casefold())
        return ("yes" if value else "no") in words or ("true" if value else "false") in words
    if isinstance(value, int | float):
        # any number written in the text ("30", "30.0", "$30.00", "1,250.5"), not digits inside ids
        for m in _NUMBER.finditer(text):
            try:
                if abs(float(m.group(0).replace(",", "")) - float(value)) < 0.005:
                    return True
            except ValueError:
                continue
        return False
    v = norm_text(value)
    if not v:
        return True
    t = norm_text(text)
    if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", t):
        return True
    if "_" not in v:
        return False
    # an enum value in words: underscores as spaces, with an article allowed between the words
    # (at_depot: "at depot", "at the depot"; out_of_service: "out of service")
    words = [re.escape(w) for w in v.split("_") if w]
    return bool(words) and re.search(r"(?<!\w)" + _ENUM_GAP.join(words) + r"(?!\w)", t) is not None


_ENUM_GAP = r" (?:(?:the|a|an) )?"


def agent_text(messages: list[dict[str, Any]]) -> str:
    """The assistant messages' text; anything that is not a message (None, a string) is skipped."""
    return "\n".join(str(m.get("content") or "") for m in messages
                     if isinstance(m, dict) and m.get("role") == "assistant")


def _is_call(m: dict[str, Any]) -> bool:
    return m.get("role") == "tool" or bool(m.get("tool_call") or m.get("tool_calls"))


def report_text(messages: list[dict[str, Any]]) -> str:
    """What the agent said after its last tool call: its report of the outcome, which the claims are
    judged on. A remark before acting ("I can't rent you a bike without your email") or an earlier
    failure ("I could not find your account") is not a claim about the outcome. When nothing
    follows the last call, every assistant message counts."""
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and _is_call(m)), default=-1)
    after = [m for m in messages[last + 1:] if isinstance(m, dict)]
    return agent_text(after) if any(m.get("role") == "assistant" and m.get("content") for m in after) \
        else agent_text(messages)


def evaluate(schema: DomainSchema, db: Any, expected: Expected, required: list[RequiredValue],
             messages: list[dict[str, Any]], outcome: str | None = None, goals: Sequence[str] = ()) -> Reward:
    """The reward of a finished episode. With ``outcome`` ("completed" or "refused") and the goals'
    intent phrases in order, the agent's claims are checked too (:func:`check_claims`)."""
    reasons, mism = compare_state(schema, db, expected)
    text = agent_text(messages)
    missing = [r for r in required if not value_mentioned(r.value, text)]
    reasons += [f"the agent did not tell the user {r.label} = {r.value!r}" for r in missing]
    claims: list[str] = []
    if outcome is not None:
        values = tuple(str(r.value) for r in required if isinstance(r.value, str))
        claims = check_claims(claim_rules(outcome, tuple(goals), values), report_text(messages))
    reasons += claims
    ok_state, ok_comm, ok_claims = not mism, not missing, not claims
    return Reward(reward=1.0 if ok_state and ok_comm and ok_claims else 0.0, state_ok=ok_state,
                  communicated_ok=ok_comm, claims_ok=ok_claims, reasons=reasons, mismatches=mism,
                  missing_values=missing)
