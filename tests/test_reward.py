"""The reward rules of docs/tasks.md ("## Rewards"), one table of cases per rule.

Every state case runs a ground truth ("gold") and an agent on two fresh copies of a tiny
hand-written shop (tests/data/reward_shop.yaml), builds ``Expected`` from the gold run's undo log,
and asserts exactly what ``compare_state`` reports: no reasons and no mismatches when the state
should score, else the reason lines and ``{table, row, column, expected, actual}`` entries.

``DomainDB`` rounds money to the cent when it writes, which would hide a tolerance bug, so the
off-by-a-fraction values are planted with plain SQL (``raw``) after a logged write of the row.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from core.data.db import DomainDB
from core.evaluation import reward
from core.evaluation.claims import (
    GENERIC_ACTIONS,
    GENERIC_DONE,
    HYPOTHETICAL,
    NEGATIONS,
    NOT_MARKS,
    REFUSAL_WORDS,
    check_claims,
    claim_rules,
    intent_object,
    intent_verb,
    past_forms,
)
from core.evaluation.reward import (
    MAX_PAIRINGS,
    Expected,
    RequiredValue,
    Reward,
    compare_state,
    evaluate,
    expected_from,
    norm_text,
    value_mentioned,
)
from core.spec.blueprint import load_blueprint

SHOP = Path(__file__).resolve().parent / "data" / "reward_shop.yaml"
NOW = "2026-03-02T09:00:00"


@pytest.fixture(scope="module")
def schema():
    return load_blueprint(SHOP).schema


# ---------------------------------------------------------------------- rows


def order(oid: str, **over) -> dict:
    return {"order_id": oid, "customer_id": "CUS-0003", "status": "open", "total": 20.0, "discount": None,
            "gift": False, "note": None, "due_on": None, "placed_at": NOW} | over


def line(lid: str, oid: str, **over) -> dict:
    return {"line_id": lid, "order_id": oid, "item_id": "ITM-0002", "qty": 1, "weight": 0.25} | over


def customer(cid: str, **over) -> dict:
    return {"customer_id": cid, "name": "Dee Eng", "email": "dee@shop.test", "tier": "basic", "vip": False,
            "joined_on": "2026-03-02", "credit": 0.0} | over


CONTACT = {"contact_id": "CON-0001", "name": "Eva Fox", "first_name": "Eva", "last_name": "Fox",
           "bio": "Likes tea", "nickname": "foxy", "employer": "Fox Ltd", "street": "1 Hauptstraße",
           "town": "Bergen", "handle": "evafox", "email": "eva@fox.test", "phone": "555-010-2000",
           "badge": "B-123"}

SEED = {
    "customers": [
        customer("CUS-0001", name="Ann Lee", email="ann@shop.test", joined_on="2025-01-10", credit=20.0),
        customer("CUS-0002", name="Bo Chen", email="bo@shop.test", tier="gold", vip=True,
                 joined_on="2024-06-01", credit=5.5),
        customer("CUS-0003", name="Cy Diaz", email="cy@shop.test", joined_on="2025-11-30"),
    ],
    "items": [{"item_id": "ITM-0001", "title": "Blue mug", "price": 12.5},
              {"item_id": "ITM-0002", "title": "Tea towel", "price": 4.0}],
    "orders": [
        order("ORD-0001", customer_id="CUS-0001", total=30.0, placed_at="2026-03-01T10:00:00"),
        order("ORD-0002", customer_id="CUS-0002", status="paid", total=45.5, discount=5.0, gift=True,
              note="Leave at the door", due_on="2026-03-20", placed_at="2026-02-20T08:30:00"),
        order("ORD-0003", customer_id="CUS-0001", status="cancelled", total=12.5, note="call first",
              placed_at="2026-02-01T12:00:00"),
    ],
    "order_lines": [line("LIN-0001", "ORD-0001", item_id="ITM-0001", qty=2, weight=0.8),
                    line("LIN-0002", "ORD-0002")],
    "contacts": [CONTACT],
}


def fresh(schema) -> DomainDB:
    db = DomainDB(schema)
    db.load(SEED)
    db.mark()
    return db


# ---------------------------------------------------------------------- writes (gold or agent)


def upd(table: str, key: str, **values):
    return lambda db: db.update(table, key, values)


def ins(table: str, row: dict):
    return lambda db: db.insert(table, row)


def rm(table: str, key: str):
    return lambda db: db.delete(table, key)


def raw(table: str, key: str, **values):
    """Store values as given (no rounding, no enum check), logged as a write of the row."""
    def op(db):
        pk = db.schema.table(table).primary_key
        current = db.get(table, key)
        db.update(table, key, {c: current[c] for c in values})  # records the pre-image
        for c, v in values.items():
            db.conn.execute(f'UPDATE "{table}" SET "{c}" = ? WHERE "{pk}" = ?', (v, key))
    return op


def run(schema, gold: list, agent: list) -> tuple[list[str], list[dict]]:
    g = fresh(schema)
    for op in gold:
        op(g)
    exp = expected_from(g.before, g)
    a = fresh(schema)
    for op in agent:
        op(a)
    return compare_state(schema, a, exp)


def mm(table, row, column, expected, actual) -> dict:
    return {"table": table, "row": row, "column": column, "expected": expected, "actual": actual}


OK: tuple[list, list] = ([], [])


def bad(*problems: tuple[str, dict]) -> tuple[list[str], list[dict]]:
    return [r for r, _ in problems], [m for _, m in problems]


def value_off(table, key, column, expected, actual):
    """The reason and mismatch of one differing column of an existing row."""
    return (f"{table}[{key}].{column}: expected {expected!r}, got {actual!r}",
            mm(table, key, column, expected, actual))


def unexpected(table, row: dict, pk: str):
    return f"{table}: unexpected new row {row[pk]}", mm(table, row[pk], "*", None, row)


PAID = upd("orders", "ORD-0001", status="paid")


# ---------------------------------------------------------------------- which rows are compared

ROWS_COMPARED = [
    pytest.param([PAID], [PAID], OK, id="agent-writes-what-gold-wrote"),
    pytest.param([], [], OK, id="nothing-to-do-nothing-done"),
    pytest.param([PAID], [], bad(value_off("orders", "ORD-0001", "status", "paid", "open")),
                 id="gold-update-the-agent-never-made"),
    pytest.param([PAID], [upd("orders", "ORD-0001", status="cancelled")],
                 bad(value_off("orders", "ORD-0001", "status", "paid", "cancelled")),
                 id="right-row-wrong-value"),
    pytest.param([PAID], [upd("orders", "ORD-0003", status="paid")],
                 bad(value_off("orders", "ORD-0001", "status", "paid", "open"),
                     value_off("orders", "ORD-0003", "status", "cancelled", "paid")),
                 id="wrong-row-updated-both-reported-in-key-order"),
    pytest.param([PAID], [PAID, upd("customers", "CUS-0002", credit=10)],
                 bad(value_off("customers", "CUS-0002", "credit", 5.5, 10.0)),
                 id="stray-write-in-another-table"),
    pytest.param([], [upd("orders", "ORD-0002", status="open", gift=False)],
                 bad(value_off("orders", "ORD-0002", "status", "paid", "open"),
                     value_off("orders", "ORD-0002", "gift", True, False)),
                 id="every-differing-column-reported-in-column-order"),
    pytest.param([upd("orders", "ORD-0001", status="paid", total=31.25)], [PAID],
                 bad(value_off("orders", "ORD-0001", "total", 31.25, 30.0)),
                 id="expected-row-compared-in-full"),
    pytest.param([], [upd("orders", "ORD-0003", status="open"), upd("customers", "CUS-0001", tier="gold")],
                 bad(value_off("orders", "ORD-0003", "status", "cancelled", "open"),
                     value_off("customers", "CUS-0001", "tier", "basic", "gold")),
                 id="tables-reported-in-blueprint-order"),
]


@pytest.mark.parametrize("gold,agent,want", ROWS_COMPARED)
def test_which_rows_are_compared(schema, gold, agent, want):
    assert run(schema, gold, agent) == want


# ---------------------------------------------------------------------- exempt columns

EXEMPT = [
    pytest.param([ins("orders", order("ORD-0004"))], [ins("orders", order("ORD-0009"))], OK,
                 id="inserted-row-with-another-generated-id"),
    pytest.param([ins("orders", order("ORD-0004"))], [ins("orders", order("ORD-0004", placed_at="2026-01-01T00:00:00"))],
                 OK, id="inserted-row-with-another-timestamp"),
    pytest.param([], [upd("orders", "ORD-0002", placed_at="2020-01-01T00:00:00")], OK,
                 id="existing-row-timestamp-changed"),
    pytest.param([upd("orders", "ORD-0001", status="paid", placed_at=NOW)], [PAID], OK,
                 id="expected-timestamp-not-matched"),
    pytest.param([ins("orders", order("ORD-0004"))], [ins("orders", order("ORD-0009", due_on="2026-03-05"))],
                 bad(("orders: an expected new row is missing (closest differs in due_on)",
                      mm("orders", "new row like ORD-0004", "due_on", None, "2026-03-05")),
                     unexpected("orders", order("ORD-0009", due_on="2026-03-05"), "order_id")),
                 id="a-date-is-not-a-timestamp"),
    pytest.param([], [upd("customers", "CUS-0003", joined_on="2025-12-01")],
                 bad(value_off("customers", "CUS-0003", "joined_on", "2025-11-30", "2025-12-01")),
                 id="existing-row-date-changed"),
    pytest.param([ins("orders", order("ORD-0004"))], [ins("orders", order("ORD-0009", status="paid"))],
                 bad(("orders: an expected new row is missing (closest differs in status)",
                      mm("orders", "new row like ORD-0004", "status", "open", "paid")),
                     unexpected("orders", order("ORD-0009", status="paid"), "order_id")),
                 id="inserted-row-non-exempt-column-differs"),
]


@pytest.mark.parametrize("gold,agent,want", EXEMPT)
def test_exempt_columns(schema, gold, agent, want):
    assert run(schema, gold, agent) == want


# ---------------------------------------------------------------------- money and floats to the cent

MONEY = [
    pytest.param([], [raw("orders", "ORD-0001", total=30.004)], OK, id="money-0.004-over"),
    pytest.param([], [raw("orders", "ORD-0001", total=29.996)], OK, id="money-0.004-under"),
    pytest.param([], [raw("orders", "ORD-0001", total=30.006)],
                 bad(value_off("orders", "ORD-0001", "total", 30.0, 30.006)), id="money-0.006-over"),
    pytest.param([], [raw("orders", "ORD-0001", total=29.994)],
                 bad(value_off("orders", "ORD-0001", "total", 30.0, 29.994)), id="money-0.006-under"),
    pytest.param([upd("orders", "ORD-0001", total=31.25)], [raw("orders", "ORD-0001", total=31.254)], OK,
                 id="expected-money-0.004-off"),
    pytest.param([upd("orders", "ORD-0001", total=31.25)], [raw("orders", "ORD-0001", total=31.256)],
                 bad(value_off("orders", "ORD-0001", "total", 31.25, 31.256)), id="expected-money-0.006-off"),
    pytest.param([], [raw("customers", "CUS-0003", credit=0.005)],
                 bad(value_off("customers", "CUS-0003", "credit", 0.0, 0.005)), id="money-half-a-cent-off"),
    pytest.param([], [raw("orders", "ORD-0001", total=30.01)],
                 bad(value_off("orders", "ORD-0001", "total", 30.0, 30.01)), id="money-a-cent-off"),
    pytest.param([], [raw("order_lines", "LIN-0001", weight=0.804)], OK, id="float-0.004-off"),
    pytest.param([], [raw("order_lines", "LIN-0001", weight=0.806)],
                 bad(value_off("order_lines", "LIN-0001", "weight", 0.8, 0.806)), id="float-0.006-off"),
    pytest.param([], [raw("order_lines", "LIN-0001", qty=2.004)],
                 bad(value_off("order_lines", "LIN-0001", "qty", 2, 2.004)), id="int-is-exact"),
    pytest.param([], [raw("orders", "ORD-0001", total="thirty")],
                 bad(value_off("orders", "ORD-0001", "total", 30.0, "thirty")), id="money-not-a-number"),
    pytest.param([ins("orders", order("ORD-0004"))],
                 [ins("orders", order("ORD-0009")), raw("orders", "ORD-0009", total=20.004)], OK,
                 id="inserted-money-0.004-off"),
    pytest.param([ins("orders", order("ORD-0004"))],
                 [ins("orders", order("ORD-0009")), raw("orders", "ORD-0009", total=20.006)],
                 bad(("orders: an expected new row is missing (closest differs in total)",
                      mm("orders", "new row like ORD-0004", "total", 20.0, 20.006)),
                     unexpected("orders", order("ORD-0009", total=20.006), "order_id")),
                 id="inserted-money-0.006-off"),
]


@pytest.mark.parametrize("gold,agent,want", MONEY)
def test_money_and_floats_to_the_cent(schema, gold, agent, want):
    assert run(schema, gold, agent) == want


# ---------------------------------------------------------------------- null equals only null

NULLS = [
    pytest.param([upd("orders", "ORD-0001", discount=3)], [],
                 bad(value_off("orders", "ORD-0001", "discount", 3.0, None)), id="money-value-expected-null-got"),
    pytest.param([upd("orders", "ORD-0002", discount=None)], [],
                 bad(value_off("orders", "ORD-0002", "discount", None, 5.0)), id="money-null-expected-value-got"),
    pytest.param([], [upd("orders", "ORD-0001", discount=0)],
                 bad(value_off("orders", "ORD-0001", "discount", None, 0.0)), id="null-is-not-zero"),
    pytest.param([], [upd("orders", "ORD-0001", note="None")],
                 bad(value_off("orders", "ORD-0001", "note", None, "None")), id="null-is-not-the-text-None"),
    pytest.param([], [upd("orders", "ORD-0001", note="")],
                 bad(value_off("orders", "ORD-0001", "note", None, "")), id="null-is-not-empty-text"),
    pytest.param([upd("orders", "ORD-0003", note=None)], [],
                 bad(value_off("orders", "ORD-0003", "note", None, "call first")), id="text-null-expected-value-got"),
    pytest.param([upd("orders", "ORD-0001", due_on="2026-03-09")], [],
                 bad(value_off("orders", "ORD-0001", "due_on", "2026-03-09", None)), id="date-value-expected-null-got"),
    pytest.param([upd("orders", "ORD-0002", due_on=None)], [],
                 bad(value_off("orders", "ORD-0002", "due_on", None, "2026-03-20")), id="date-null-expected-value-got"),
    pytest.param([upd("orders", "ORD-0002", due_on=None)], [upd("orders", "ORD-0002", due_on=None)], OK,
                 id="null-equals-null"),
    pytest.param([], [upd("orders", "ORD-0001", discount=None, note=None)], OK, id="null-rewritten-as-null"),
    pytest.param([ins("orders", order("ORD-0004"))], [ins("orders", order("ORD-0009", note=""))],
                 bad(("orders: an expected new row is missing (closest differs in note)",
                      mm("orders", "new row like ORD-0004", "note", None, "")),
                     unexpected("orders", order("ORD-0009", note=""), "order_id")),
                 id="inserted-row-null-vs-empty"),
]


@pytest.mark.parametrize("gold,agent,want", NULLS)
def test_null_equals_only_null(schema, gold, agent, want):
    assert run(schema, gold, agent) == want


# ---------------------------------------------------------------------- normalized text, exact everything else

NOTE = "Leave at the door"
TEXT_VS_EXACT = [
    pytest.param("  LEAVE at   the DOOR ", OK, id="text-case-and-spacing"),
    pytest.param("Leave at\tthe\ndoor", OK, id="text-tabs-and-newlines"),
    pytest.param("Leave, at the door!", OK, id="text-punctuation"),
    pytest.param("(Leave) at the door?", OK, id="text-brackets"),
    pytest.param("Ｌｅａｖｅ at the door", OK, id="text-full-width-letters-nfkc"),
    pytest.param("Leave at the doors", bad(value_off("orders", "ORD-0002", "note", NOTE, "Leave at the doors")),
                 id="text-another-word"),
    pytest.param("Leave-at the door", bad(value_off("orders", "ORD-0002", "note", NOTE, "Leave-at the door")),
                 id="text-hyphen-is-kept"),
    pytest.param("Leave.at the door", bad(value_off("orders", "ORD-0002", "note", NOTE, "Leave.at the door")),
                 id="text-dot-is-kept"),
    pytest.param("Leave_at the door", bad(value_off("orders", "ORD-0002", "note", NOTE, "Leave_at the door")),
                 id="text-underscore-is-kept"),
    pytest.param("Leave@at the door", bad(value_off("orders", "ORD-0002", "note", NOTE, "Leave@at the door")),
                 id="text-at-sign-is-kept"),
    pytest.param("Leaveat the door", bad(value_off("orders", "ORD-0002", "note", NOTE, "Leaveat the door")),
                 id="text-a-space-is-not-nothing"),
]


@pytest.mark.parametrize("note,want", TEXT_VS_EXACT)
def test_free_text_is_normalized(schema, note, want):
    assert run(schema, [], [upd("orders", "ORD-0002", note=note)]) == want


EXACT = [
    pytest.param("orders", "ORD-0002", "status", "Paid", id="enum-case"),
    pytest.param("orders", "ORD-0002", "status", "paid ", id="enum-trailing-space"),
    pytest.param("orders", "ORD-0002", "customer_id", "cus-0002", id="ref-case"),
    pytest.param("orders", "ORD-0002", "customer_id", " CUS-0002", id="ref-leading-space"),
    pytest.param("orders", "ORD-0002", "due_on", "2026-3-20", id="date-as-written"),
    pytest.param("customers", "CUS-0001", "joined_on", "2025-01-10 ", id="date-trailing-space"),
]


@pytest.mark.parametrize("table,key,column,value", EXACT)
def test_enums_refs_and_dates_are_exact(schema, table, key, column, value):
    before = next(r for r in SEED[table] if key in r.values())[column]
    assert run(schema, [], [raw(table, key, **{column: value})]) == bad(value_off(table, key, column, before, value))


@pytest.mark.parametrize("table,key,column,seeded", [
    pytest.param("orders", "ORD-0002", "gift", True, id="bool-true-to-false"),
    pytest.param("orders", "ORD-0001", "gift", False, id="bool-false-to-true"),
    pytest.param("customers", "CUS-0002", "vip", True, id="another-bool-column"),
])
def test_booleans_are_exact(schema, table, key, column, seeded):
    assert run(schema, [], [upd(table, key, **{column: not seeded})]) == \
        bad(value_off(table, key, column, seeded, not seeded))


TEXT_COLUMNS = [c for c in CONTACT if c != "contact_id"]


@pytest.mark.parametrize("column", TEXT_COLUMNS)
def test_every_text_like_type_is_normalized(schema, column):
    shouted = "  " + CONTACT[column].upper().replace(" ", "   ") + " "
    assert run(schema, [], [upd("contacts", "CON-0001", **{column: shouted})]) == OK


@pytest.mark.parametrize("column", TEXT_COLUMNS)
def test_every_text_like_type_still_compares_the_words(schema, column):
    other = CONTACT[column] + "x"
    assert run(schema, [], [upd("contacts", "CON-0001", **{column: other})]) == \
        bad(value_off("contacts", "CON-0001", column, CONTACT[column], other))


@pytest.mark.parametrize("text,normalized", [
    pytest.param("  Hello,   World! ", "hello world", id="case-punctuation-spacing"),
    pytest.param("HAUPTSTRASSE", "hauptstrasse", id="casefold"),
    pytest.param("Hauptstraße", "hauptstrasse", id="casefold-sharp-s"),
    pytest.param("ﬁle Ⅻ", "file xii", id="nfkc"),
    pytest.param("a.b@c-d_e", "a.b@c-d_e", id="kept-characters"),
    pytest.param("x\t\n\u00a0y", "x y", id="unicode-whitespace"),
    pytest.param(42, "42", id="not-a-string"),
])
def test_norm_text(text, normalized):
    assert norm_text(text) == normalized


# ---------------------------------------------------------------------- deletions

DELETIONS = [
    pytest.param([rm("orders", "ORD-0003")], [rm("orders", "ORD-0003")], OK, id="expected-deletion-made"),
    pytest.param([rm("orders", "ORD-0003")], [],
                 bad(("orders[ORD-0003]: should have been deleted", mm("orders", "ORD-0003", "*", None, "row"))),
                 id="expected-deletion-not-made"),
    pytest.param([rm("orders", "ORD-0003")], [upd("orders", "ORD-0003", note="gone")],
                 bad(("orders[ORD-0003]: should have been deleted", mm("orders", "ORD-0003", "*", None, "row"))),
                 id="updated-instead-of-deleted"),
    pytest.param([], [rm("orders", "ORD-0003")],
                 bad(("orders[ORD-0003]: row was deleted", mm("orders", "ORD-0003", "*", "row", None))),
                 id="deleted-a-row-that-should-stay"),
    pytest.param([PAID], [rm("orders", "ORD-0001")],
                 bad(("orders[ORD-0001]: row was deleted", mm("orders", "ORD-0001", "*", "row", None))),
                 id="deleted-a-row-that-should-be-updated"),
    pytest.param([rm("order_lines", "LIN-0001")], [rm("order_lines", "LIN-0002")],
                 bad(("order_lines[LIN-0001]: should have been deleted",
                      mm("order_lines", "LIN-0001", "*", None, "row")),
                     ("order_lines[LIN-0002]: row was deleted", mm("order_lines", "LIN-0002", "*", "row", None))),
                 id="deleted-the-wrong-row"),
    pytest.param([rm("orders", "ORD-0001")], [rm("orders", "ORD-0001"), upd("orders", "ORD-0003", note="x")],
                 bad(value_off("orders", "ORD-0003", "note", "call first", "x")),
                 id="rows-after-a-deleted-one-still-compared"),
    pytest.param([], [rm("orders", "ORD-0001"), upd("orders", "ORD-0003", note="x")],
                 bad(("orders[ORD-0001]: row was deleted", mm("orders", "ORD-0001", "*", "row", None)),
                     value_off("orders", "ORD-0003", "note", "call first", "x")),
                 id="rows-after-a-wrongly-deleted-one-still-compared"),
]


@pytest.mark.parametrize("gold,agent,want", DELETIONS)
def test_deletions(schema, gold, agent, want):
    assert run(schema, gold, agent) == want


# ---------------------------------------------------------------------- stray writes that were undone

UNDONE = [
    pytest.param([], [upd("customers", "CUS-0001", tier="gold"), upd("customers", "CUS-0001", tier="basic")], OK,
                 id="changed-and-changed-back"),
    pytest.param([PAID], [PAID, upd("orders", "ORD-0002", total=1, note="x"),
                          upd("orders", "ORD-0002", total=45.5, note=NOTE)], OK,
                 id="stray-write-undone-beside-the-goal"),
    pytest.param([], [rm("orders", "ORD-0002"), ins("orders", SEED["orders"][1])], OK,
                 id="deleted-and-put-back"),
    pytest.param([], [ins("orders", order("ORD-0009")), rm("orders", "ORD-0009")], OK,
                 id="inserted-and-deleted"),
    pytest.param([upd("orders", "ORD-0001", status="paid"), upd("orders", "ORD-0001", status="open")], [], OK,
                 id="gold-wrote-and-undid"),
    pytest.param([], [upd("customers", "CUS-0001", tier="gold", credit=0),
                      upd("customers", "CUS-0001", tier="basic")],
                 bad(value_off("customers", "CUS-0001", "credit", 20.0, 0.0)), id="half-undone"),
]


@pytest.mark.parametrize("gold,agent,want", UNDONE)
def test_undone_stray_writes(schema, gold, agent, want):
    assert run(schema, gold, agent) == want


# ---------------------------------------------------------------------- inserted rows: a multiset

O4, O5, O8, O9 = "ORD-0004", "ORD-0005", "ORD-0008", "ORD-0009"
C4, C5, C8, C9 = "CUS-0004", "CUS-0005", "CUS-0008", "CUS-0009"
TWINS = [ins("orders", order(O4)), ins("orders", order(O5))]  # identical but for their ids
AGENT_TWINS = [ins("orders", order(O8)), ins("orders", order(O9))]

INSERTED = [
    pytest.param([ins("orders", order(O4, total=10)), ins("orders", order(O5, total=20))],
                 [ins("orders", order(O8, total=20)), ins("orders", order(O9, total=10))], OK,
                 id="created-in-another-order"),
    pytest.param([ins("orders", order(O4)), ins("order_lines", line("LIN-0004", O4))],
                 [ins("orders", order(O9)), ins("order_lines", line("LIN-0009", O9))], OK,
                 id="new-line-points-at-its-new-order"),
    pytest.param([ins("customers", customer(C4)), ins("orders", order(O4, customer_id=C4)),
                  ins("order_lines", line("LIN-0004", O4))],
                 [ins("customers", customer(C9)), ins("orders", order(O9, customer_id=C9)),
                  ins("order_lines", line("LIN-0009", O9))], OK,
                 id="references-followed-through-three-tables-in-reference-order"),
    pytest.param([*TWINS, ins("order_lines", line("LIN-0004", O4, qty=1)),
                  ins("order_lines", line("LIN-0005", O5, qty=2))],
                 [*AGENT_TWINS, ins("order_lines", line("LIN-0008", O9, qty=1)),
                  ins("order_lines", line("LIN-0009", O8, qty=2))], OK,
                 id="identical-new-orders-paired-the-way-their-lines-need"),
    pytest.param([ins("customers", customer(C4)), ins("customers", customer(C5)),
                  upd("orders", "ORD-0001", customer_id=C4), upd("orders", "ORD-0002", customer_id=C5)],
                 [ins("customers", customer(C8)), ins("customers", customer(C9)),
                  upd("orders", "ORD-0001", customer_id=C9), upd("orders", "ORD-0002", customer_id=C8)], OK,
                 id="identical-new-customers-paired-the-way-existing-orders-need"),
    pytest.param([ins("customers", customer(C4)), upd("orders", "ORD-0001", customer_id=C4)],
                 [ins("customers", customer(C9)), upd("orders", "ORD-0001", customer_id=C9)], OK,
                 id="existing-row-points-at-the-new-row"),
    pytest.param([ins("customers", customer(C4)), upd("orders", "ORD-0001", customer_id=C4)],
                 [ins("customers", customer(C9)), upd("orders", "ORD-0001", customer_id="CUS-0003")],
                 bad(value_off("orders", "ORD-0001", "customer_id", C4, "CUS-0003")),
                 id="existing-row-points-elsewhere"),
    pytest.param([ins("customers", customer(C4)), upd("orders", "ORD-0001", customer_id=C4)],
                 [ins("customers", customer(C9)), upd("orders", "ORD-0001", customer_id=C4)],
                 bad(value_off("orders", "ORD-0001", "customer_id", C4, C4)),
                 id="existing-row-points-at-the-gold-id-not-the-agents-row"),
    pytest.param([ins("orders", order(O4)), ins("order_lines", line("LIN-0004", O4))],
                 [ins("orders", order(O9)), ins("order_lines", line("LIN-0009", "ORD-0001"))],
                 bad(("order_lines: an expected new row is missing (closest differs in order_id)",
                      mm("order_lines", "new row like LIN-0004", "order_id", O4, "ORD-0001")),
                     unexpected("order_lines", line("LIN-0009", "ORD-0001"), "line_id")),
                 id="new-line-points-at-an-old-order"),
    pytest.param([ins("orders", order(O4)), ins("order_lines", line("LIN-0004", O4))],
                 [ins("orders", order(O9)), ins("order_lines", line("LIN-0009", O9, qty=3))],
                 bad(("order_lines: an expected new row is missing (closest differs in qty)",
                      mm("order_lines", "new row like LIN-0004", "qty", 1, 3)),
                     unexpected("order_lines", line("LIN-0009", O9, qty=3), "line_id")),
                 id="diagnosis-follows-the-pairing-of-referenced-rows"),
    pytest.param([*TWINS, ins("order_lines", line("LIN-0004", O4, qty=1)),
                  ins("order_lines", line("LIN-0005", O5, qty=2))],
                 [*AGENT_TWINS, ins("order_lines", line("LIN-0008", O8, qty=1)),
                  ins("order_lines", line("LIN-0009", O9, qty=1))],
                 bad(("order_lines: an expected new row is missing (closest differs in qty)",
                      mm("order_lines", "new row like LIN-0005", "qty", 2, 1)),
                     unexpected("order_lines", line("LIN-0009", O9, qty=1), "line_id")),
                 id="identical-new-orders-but-a-wrong-line"),
    pytest.param([ins("orders", order(O4))], [ins("orders", order(O8)), ins("orders", order(O9, total=99))],
                 bad(unexpected("orders", order(O9, total=99), "order_id")), id="unexpected-extra-row"),
    pytest.param([ins("orders", order(O4))], [ins("orders", order(O8)), ins("orders", order(O9))],
                 bad(unexpected("orders", order(O9), "order_id")), id="the-same-row-twice"),
    pytest.param(TWINS, [ins("orders", order(O8)), ins("orders", order(O9, total=99))],
                 bad(("orders: an expected new row is missing (closest differs in total)",
                      mm("orders", "new row like ORD-0005", "total", 20.0, 99.0)),
                     unexpected("orders", order(O9, total=99.0), "order_id")),
                 id="two-expected-rows-cannot-share-one-actual-row"),
    pytest.param([], [ins("customers", customer(C9))], bad(unexpected("customers", customer(C9), "customer_id")),
                 id="new-row-where-none-was-expected"),
    pytest.param([ins("orders", order(O4))], [],
                 bad(("orders: an expected new row is missing", mm("orders", "new row", "*", order(O4), None))),
                 id="expected-new-row-missing"),
    pytest.param([ins("orders", order(O4, total=10)), ins("customers", customer(C4))], [],
                 bad(("customers: an expected new row is missing",
                      mm("customers", "new row", "*", customer(C4), None)),
                     ("orders: an expected new row is missing",
                      mm("orders", "new row", "*", order(O4, total=10.0), None))),
                 id="expected-new-rows-missing-in-two-tables"),
    pytest.param([ins("orders", order(O4, total=10)), ins("orders", order(O5, total=20))],
                 [ins("orders", order(O9, total=10))],
                 bad(("orders: an expected new row is missing",
                      mm("orders", "new row", "*", order(O5, total=20), None))),
                 id="one-of-two-new-rows-missing"),
    pytest.param([ins("orders", order(O4))],
                 [ins("orders", order(O8, customer_id="CUS-0002", status="paid", total=21)),
                  ins("orders", order(O9, total=21))],
                 bad(("orders: an expected new row is missing (closest differs in total)",
                      mm("orders", "new row like ORD-0004", "total", 20.0, 21.0)),
                     unexpected("orders", order(O8, customer_id="CUS-0002", status="paid", total=21.0), "order_id"),
                     unexpected("orders", order(O9, total=21.0), "order_id")),
                 id="closest-row-is-the-one-with-fewest-differences"),
    pytest.param([ins("orders", order(O4))], [ins("orders", order(O9, status="paid", total=21))],
                 (["orders: an expected new row is missing (closest differs in status, total)",
                   "orders: unexpected new row ORD-0009"],
                  [mm("orders", "new row like ORD-0004", "status", "open", "paid"),
                   mm("orders", "new row like ORD-0004", "total", 20.0, 21.0),
                   mm("orders", O9, "*", None, order(O9, status="paid", total=21.0))]),
                 id="closest-row-differs-in-two-columns"),
]


@pytest.mark.parametrize("gold,agent,want", INSERTED)
def test_inserted_rows_match_as_a_multiset(schema, gold, agent, want):
    assert run(schema, gold, agent) == want


# Six identical new customers pair 720 ways (lexicographic order of permutations, depth first).
# Existing orders pointing at three of them single out one pairing: the 200th, the last one
# compare_state tries (MAX_PAIRINGS), or the 201st, which it does not try.
GOLD_CUSTOMERS = [f"CUS-{n:04d}" for n in range(4, 10)]
AGENT_CUSTOMERS = [f"CUS-{n:04d}" for n in range(11, 17)]
PAIRING_200 = {"ORD-0001": (1, 4), "ORD-0002": (3, 0), "ORD-0003": (4, 5)}  # order: (gold i, agent j)
PAIRING_201 = {"ORD-0001": (0, 1), "ORD-0002": (1, 4), "ORD-0003": (4, 0)}


def six_twins(schema, pairing):
    gold = [ins("customers", customer(c)) for c in GOLD_CUSTOMERS]
    gold += [upd("orders", o, customer_id=GOLD_CUSTOMERS[i]) for o, (i, _) in pairing.items()]
    agent = [ins("customers", customer(c)) for c in AGENT_CUSTOMERS]
    agent += [upd("orders", o, customer_id=AGENT_CUSTOMERS[j]) for o, (_, j) in pairing.items()]
    return run(schema, gold, agent)


def test_max_pairings_is_documented_as_200():
    assert MAX_PAIRINGS == 200


def test_the_last_pairing_within_max_pairings_is_tried(schema):
    assert six_twins(schema, PAIRING_200) == OK


def test_no_pairing_beyond_max_pairings_is_tried_and_first_fit_explains(schema):
    # first fit pairs gold CUS-0004.. with agent CUS-0011.. in order
    assert six_twins(schema, PAIRING_201) == bad(
        value_off("orders", "ORD-0001", "customer_id", "CUS-0004", "CUS-0012"),
        value_off("orders", "ORD-0002", "customer_id", "CUS-0005", "CUS-0015"),
        value_off("orders", "ORD-0003", "customer_id", "CUS-0008", "CUS-0011"))


def test_table_order_is_computed_once_per_schema_and_forgotten_with_it(monkeypatch):
    calls = []
    real = reward.table_order
    monkeypatch.setattr(reward, "table_order", lambda s: (calls.append(1), real(s))[1])
    own = load_blueprint(SHOP).schema
    db = fresh(own)
    ins("orders", order(O9))(db)
    exp = Expected(inserted={"orders": [order(O4)]})
    assert compare_state(own, db, exp) == compare_state(own, db, exp) == OK
    assert len(calls) == 1
    key, alive = id(own), weakref.ref(own)
    assert key in reward._ORDERS
    del own, db
    gc.collect()
    assert alive() is None
    assert key not in reward._ORDERS


# ---------------------------------------------------------------------- Expected from the gold run


def test_expected_holds_only_net_changes_of_the_gold_run(schema):
    g = fresh(schema)
    for op in [PAID, rm("orders", "ORD-0003"), ins("orders", order(O4)),
               upd("orders", "ORD-0002", note="x"), upd("orders", "ORD-0002", note=NOTE),  # undone
               ins("orders", order(O9)), rm("orders", O9)]:  # gone again
        op(g)
    assert expected_from(g.before, g) == Expected(
        inserted={"orders": [order(O4)]},
        updated={"orders": {"ORD-0001": SEED["orders"][0] | {"status": "paid"}}},
        deleted={"orders": ["ORD-0003"]})


# ---------------------------------------------------------------------- who told the user

TOTAL = RequiredValue(value=45.5, label="orders.total", why="result of pay_order")
SAID = "Your order total is $45.50."

ROLES = [
    pytest.param([{"role": "assistant", "content": SAID}], True, id="assistant-says-it"),
    pytest.param([{"role": "user", "content": "hi"}, {"role": "assistant", "content": None},
                  {"role": "tool", "content": "{}"}, {"role": "assistant", "content": SAID}], True,
                 id="assistant-says-it-in-a-later-message"),
    pytest.param([{"role": "user", "content": SAID}, {"role": "assistant", "content": "Done."}], False,
                 id="only-the-user-says-it"),
    pytest.param([{"role": "tool", "content": '{"total": 45.5}'}, {"role": "assistant", "content": "Done."}],
                 False, id="only-a-tool-result-holds-it"),
    pytest.param([{"role": "system", "content": SAID}, {"role": "assistant", "content": "Done."}], False,
                 id="only-the-system-prompt-holds-it"),
    pytest.param([{"role": "assistant", "content": None, "tool_calls": [{"arguments": {"total": 45.5}}]}], False,
                 id="only-a-tool-call-holds-it"),
    pytest.param([{"content": SAID}], False, id="a-message-without-a-role"),
    pytest.param([], False, id="no-messages"),
]


@pytest.mark.parametrize("messages,told", ROLES)
def test_only_assistant_messages_tell_the_user(schema, messages, told):
    r = evaluate(schema, fresh(schema), Expected(), [TOTAL], messages)
    assert (r.communicated_ok, r.reward, r.missing_values) == (told, float(told), [] if told else [TOTAL])


def test_assistant_messages_are_read_apart(schema):
    one, many = RequiredValue(value=1, label="order_lines.qty"), RequiredValue(value=250, label="items.stock")
    joined = RequiredValue(value=1250, label="orders.total")
    messages = [{"role": "assistant", "content": "You ordered 1"}, {"role": "assistant", "content": "250 left."}]
    r = evaluate(schema, fresh(schema), Expected(), [one, many, joined], messages)
    assert r.missing_values == [joined]


# ---------------------------------------------------------------------- value_mentioned

MENTIONED = [
    # numbers in usual formats
    pytest.param(30, "30", True, id="int-bare"),
    pytest.param(30, "It takes 30 days.", True, id="int-in-a-sentence"),
    pytest.param(30, "30.0", True, id="int-as-30.0"),
    pytest.param(30, "That is $30.00 in total", True, id="int-as-dollars"),
    pytest.param(30, "it came to 30.", True, id="int-before-a-full-stop"),
    pytest.param(30, "(30)", True, id="int-in-brackets"),
    pytest.param(30.0, "30", True, id="float-as-int"),
    pytest.param(1250.5, "1,250.5", True, id="thousands-separator"),
    pytest.param(1250.5, "$1,250.50", True, id="thousands-separator-dollars"),
    pytest.param(12, "a 12-month lease", True, id="number-before-a-hyphen-and-a-word"),
    pytest.param(12.5, "12.504", True, id="within-0.005"),
    pytest.param(12.5, "12.496", True, id="within-0.005-below"),
    pytest.param(-5, "the balance is -5.00", True, id="negative"),
    pytest.param(0, "a balance of 0", True, id="zero"),
    pytest.param(7, "RDR-0030 owes 7", True, id="a-later-number-counts"),
    pytest.param(12.5, "12.506", False, id="beyond-0.005"),
    pytest.param(0, "0.005", False, id="exactly-0.005-is-beyond"),
    pytest.param(30, "RDR-0030", False, id="digits-inside-an-id"),
    pytest.param(30, "RDR0030", False, id="digits-after-letters"),
    pytest.param(30, "2026-04-30", False, id="day-of-a-date"),
    pytest.param(3, "2026-03-30", False, id="month-of-a-date"),
    pytest.param(2026, "2026-03-30", False, id="year-of-a-date"),
    pytest.param(30, "555-030-1234", False, id="digits-inside-a-phone"),
    pytest.param(555, "555-030-1234", False, id="start-of-a-phone"),
    pytest.param(12, "12.5", False, id="whole-part-of-a-decimal"),
    pytest.param(5, "12.5", False, id="decimal-part"),
    pytest.param(12, "112", False, id="end-of-a-longer-number"),
    pytest.param(30, "300 days", False, id="start-of-a-longer-number"),
    pytest.param(30, "30,000", False, id="start-of-a-thousands-number"),
    pytest.param(30, "30kg", False, id="before-a-letter"),
    pytest.param(30, "item_30", False, id="after-an-underscore"),
    pytest.param(30, "30_a", False, id="before-an-underscore"),
    pytest.param(30, "v1.30", False, id="after-a-dot"),
    pytest.param(30, "-30", False, id="minus-30-is-not-30"),
    pytest.param(30, "no number here", False, id="no-number"),
    # booleans: whole words
    pytest.param(True, "Yes.", True, id="true-yes"),
    pytest.param(True, "it is TRUE", True, id="true-true"),
    pytest.param(False, "No, it is not.", True, id="false-no"),
    pytest.param(False, "that is false,", True, id="false-false"),
    pytest.param(True, "yesterday, eyes", False, id="yes-inside-words"),
    pytest.param(True, "untrue", False, id="true-inside-a-word"),
    pytest.param(True, "it is not so", False, id="true-from-nothing"),
    pytest.param(True, "1 item", False, id="true-is-not-1"),
    pytest.param(True, "no", False, id="true-is-not-no"),
    pytest.param(True, "false", False, id="true-is-not-false"),
    pytest.param(False, "I do not know, nothing, none, nope", False, id="no-inside-words"),
    pytest.param(False, "falsehood", False, id="false-inside-a-word"),
    pytest.param(False, "0 items", False, id="false-is-not-0"),
    pytest.param(False, "yes", False, id="false-is-not-yes"),
    pytest.param(False, "true", False, id="false-is-not-true"),
    # strings
    pytest.param("suspended", "Your account is SUSPENDED.", True, id="string-case-insensitive"),
    pytest.param("suspended", "it is unsuspended", False, id="string-inside-a-word"),
    pytest.param("suspended", "suspended_at", False, id="string-before-an-underscore"),
    pytest.param("flat_tire", "a flat tire", True, id="underscore-as-space"),
    pytest.param("flat_tire", "a Flat_Tire", True, id="underscore-as-written"),
    pytest.param("flat_tire", "a flat tires", False, id="underscore-as-space-inside-a-word"),
    pytest.param("flat tire", "a flat_tire", False, id="space-is-not-underscore"),
    pytest.param("RNT-0061", "rental rnt-0061 is open", True, id="id"),
    pytest.param("RNT-0061", "rental RNT-00612", False, id="id-prefix-of-another"),
    pytest.param("2026-04-01", "until 2026-04-01.", True, id="date-string"),
    pytest.param("O'Brien", "Mr o brien called", True, id="string-punctuation-normalized"),
    pytest.param("v1.2", "version v152", False, id="dot-is-literal"),
    pytest.param("", "anything", True, id="empty-string"),
    # enum values in words: underscores as spaces, an article allowed between the words
    pytest.param("at_depot", "your parcel is at depot DEP-0002", True, id="enum-words"),
    pytest.param("at_depot", "your parcel is at the depot", True, id="enum-words-with-the"),
    pytest.param("at_depot", "It is AT A DEPOT now", True, id="enum-words-with-a"),
    pytest.param("out_of_service", "the bike is out of service", True, id="enum-three-words"),
    pytest.param("out_of_service", "the bike is out of the service", True, id="enum-three-words-with-the"),
    pytest.param("at_depot", "your parcel is at the station", False, id="enum-words-another-value"),
    pytest.param("in_repair", "the bike is in the shop", False, id="enum-words-another-value-with-the"),
    pytest.param("at_depot", "at the the depot", False, id="enum-words-one-article-only"),
    pytest.param("at_depot", "at this depot", False, id="enum-words-articles-only"),
    pytest.param("at_depot", "at the depots", False, id="enum-words-inside-a-word"),
    pytest.param("at_depot", "that depot", False, id="enum-words-all-words-needed"),
    pytest.param("at depot", "at the depot", False, id="no-underscore-no-article"),
    pytest.param("__", "anything", False, id="only-underscores"),
]


@pytest.mark.parametrize("value,text,mentioned", MENTIONED)
def test_value_mentioned(value, text, mentioned):
    assert value_mentioned(value, text) is mentioned


# ---------------------------------------------------------------------- the Reward


def test_reward_one_when_state_and_communication_are_right(schema):
    db = fresh(schema)
    PAID(db)
    r = evaluate(schema, db, Expected(updated={"orders": {"ORD-0001": db.get("orders", "ORD-0001")}}),
                 [RequiredValue(value="paid", label="orders.status")],
                 [{"role": "assistant", "content": "Order ORD-0001 is now paid."}])
    assert r == Reward(reward=1.0, state_ok=True, communicated_ok=True, reasons=[], mismatches=[],
                       missing_values=[])


def test_reward_zero_when_the_state_is_wrong_even_if_told(schema):
    db = fresh(schema)
    upd("orders", "ORD-0002", gift=False)(db)
    r = evaluate(schema, db, Expected(), [TOTAL], [{"role": "assistant", "content": SAID}])
    assert r == Reward(reward=0.0, state_ok=False, communicated_ok=True,
                       reasons=["orders[ORD-0002].gift: expected True, got False"],
                       mismatches=[mm("orders", "ORD-0002", "gift", True, False)], missing_values=[])


def test_reward_zero_when_a_value_was_not_told(schema):
    vip = RequiredValue(value=True, label="customers.vip")
    r = evaluate(schema, fresh(schema), Expected(), [TOTAL, vip],
                 [{"role": "assistant", "content": "Yes, you are a VIP."}])
    assert r == Reward(reward=0.0, state_ok=True, communicated_ok=False,
                       reasons=["the agent did not tell the user orders.total = 45.5"],
                       mismatches=[], missing_values=[TOTAL])


def test_reward_lists_state_reasons_before_communication(schema):
    db = fresh(schema)
    rm("orders", "ORD-0003")(db)
    status = RequiredValue(value="cancelled", label="orders.status")
    r = evaluate(schema, db, Expected(), [status, TOTAL], [{"role": "user", "content": SAID}])
    assert r == Reward(reward=0.0, state_ok=False, communicated_ok=False,
                       reasons=["orders[ORD-0003]: row was deleted",
                                "the agent did not tell the user orders.status = 'cancelled'",
                                "the agent did not tell the user orders.total = 45.5"],
                       mismatches=[mm("orders", "ORD-0003", "*", "row", None)], missing_values=[status, TOTAL])


def test_reward_zero_when_the_claims_are_wrong(schema):
    said = [{"role": "assistant", "content": "Your order total is $45.50. I could not pay the order."}]
    r = evaluate(schema, fresh(schema), Expected(), [TOTAL], said, "completed", ["pay order {order_id}"])
    assert r == Reward(reward=0.0, state_ok=True, communicated_ok=True, claims_ok=False,
                       reasons=["the agent reported a goal that was done (pay order {order_id}) as not done: "
                                "'i could not pay the order'"], mismatches=[], missing_values=[])


def test_claims_are_checked_only_with_an_outcome(schema):
    said = [{"role": "assistant", "content": "Your order total is $45.50. I could not pay the order."}]
    r = evaluate(schema, fresh(schema), Expected(), [TOTAL], said)
    assert (r.reward, r.claims_ok, r.reasons) == (1.0, True, [])
    r = evaluate(schema, fresh(schema), Expected(), [TOTAL], said, "completed")  # no goals: the request only
    assert (r.reward, r.claims_ok) == (1.0, True)
    r = evaluate(schema, fresh(schema), Expected(), [TOTAL], [{"role": "assistant", "content": SAID + " Done."}],
                 "refused", ["pay order {order_id}"])
    assert (r.reward, r.claims_ok) == (0.0, False)
    assert r.reasons == ["the agent did not say that the request could not be done (pay order {order_id})",
                         "the agent claimed the refused goal (pay order {order_id}) was done: 'done'"]


def test_reward_lists_claims_after_state_and_communication(schema):
    db = fresh(schema)
    rm("orders", "ORD-0003")(db)
    r = evaluate(schema, db, Expected(), [TOTAL], [{"role": "assistant", "content": "I paid the order."}],
                 "refused", ["pay order {order_id}"])
    assert (r.reward, r.state_ok, r.communicated_ok, r.claims_ok) == (0.0, False, False, False)
    assert r.reasons == ["orders[ORD-0003]: row was deleted", "the agent did not tell the user orders.total = 45.5",
                         "the agent did not say that the request could not be done (pay order {order_id})",
                         "the agent claimed the refused goal (pay order {order_id}) was done: 'i paid the order'"]


def test_only_assistant_messages_make_claims(schema):
    messages = [{"role": "user", "content": "I could not pay it."}, {"role": "tool", "content": "could not pay"},
                {"role": "assistant", "content": SAID}]
    assert evaluate(schema, fresh(schema), Expected(), [TOTAL], messages, "completed",
                    ["pay order {order_id}"]).reward == 1.0
    assert evaluate(schema, fresh(schema), Expected(), [TOTAL], messages, "refused",
                    ["pay order {order_id}"]).reasons == [
        "the agent did not say that the request could not be done (pay order {order_id})"]


# ---------------------------------------------------------------------- claims

PICKUP = "book a {slot} pickup of {parcel_count} parcels on {pickup_on} from depot {depot_id} for sender {sender_id}"
SUSPEND, REINSTATE = "suspend rider {rider_id}", "reinstate rider {rider_id}"
PAY = "pay invoice {invoice_id} by card"
CANCEL = "cancel rental {rental_id}"
HOLD, APPT = "cancel hold {hold_id}", "cancel appointment {appointment_id}"
CHECK_IN = "check in guest {guest_id}"
BY_CARD, BY_CREDIT = "pay invoice {invoice_id} by card", "pay invoice {invoice_id} with account credit"
FAILED = "record that inspection {inspection_id} failed"

# (outcome, goals' intents, string values to tell, what the agent says, claims hold)
CLAIMS = [
    # a refusal: refusal language, and no claim that the refused goal was done
    pytest.param("refused", [PICKUP], ["closed"], "I could not do that. status: closed", True,
                 id="refusal-oracle-words"),
    pytest.param("refused", [PICKUP], [], "I'm sorry, but I couldn't book the pickup: the depot is closed.", True,
                 id="refusal-couldnt"),
    pytest.param("refused", [PICKUP], [], "I couldn\u2019t book the pickup.", True, id="refusal-curly-apostrophe"),
    pytest.param("refused", [PICKUP], [], "I cant book the pickup, sorry.", True, id="refusal-no-apostrophe"),
    pytest.param("refused", [PICKUP], [], "The pickup CANNOT be booked: the depot is closed.", True,
                 id="refusal-cannot-be-participle"),
    pytest.param("refused", [PICKUP], [], "It is not possible, the depot is closed.", True, id="refusal-not-possible"),
    pytest.param("refused", [PICKUP], [], "That will not be possible, the depot is closed.", True,
                 id="refusal-not-be-possible"),
    pytest.param("refused", [PICKUP], [], "I was unable to, the depot is closed.", True, id="refusal-unable"),
    # restating the rule: an adverb between the modal and the verb keeps it hypothetical (play-test)
    pytest.param("refused", [PICKUP], [], "I could not: pickups can only be booked while the depot is open.", True,
                 id="refusal-rule-with-only"),
    pytest.param("refused", [PICKUP], [], "I could not, sorry. But I booked the pickup anyway.", False,
                 id="refusal-then-claim-after-but"),
    pytest.param("refused", [PICKUP], [], "Sorry, that is not allowed while the depot is closed.", True,
                 id="refusal-not-allowed"),
    pytest.param("refused", [PICKUP], [], "The request did not go through: the depot is closed.", True,
                 id="refusal-did-not-go-through"),
    pytest.param("refused", [PICKUP], [], "I didn't book the pickup: the depot is closed.", True,
                 id="refusal-negated-verb"),
    pytest.param("refused", [PICKUP], [], "Nothing was booked, since the depot is closed.", True,
                 id="refusal-nothing-was-participle"),
    pytest.param("refused", [PICKUP], [], "The depot is closed, so no pickup was booked.", True,
                 id="refusal-no-noun-was-participle"),
    pytest.param("refused", [PICKUP], [], "I can't book it; it can be booked once the depot reopens.", True,
                 id="refusal-hypothetical-participle"),
    pytest.param("refused", [PICKUP], [], "I can't book it. Do you want it booked at another depot?", True,
                 id="refusal-question"),
    pytest.param("refused", [PICKUP], [], "I tried to get it booked, but I could not: the depot is closed.", True,
                 id="refusal-tried"),
    pytest.param("refused", [PICKUP], [], "I have done what I could, but I couldn't book the pickup.", True,
                 id="refusal-done-what-i-could"),
    pytest.param("refused", [PICKUP], [], "Your pickup is booked (note: the depot is closed).", False,
                 id="refusal-claimed-the-issue-example"),
    pytest.param("refused", [PICKUP], ["closed"], "Done, it went through. status: closed", False,
                 id="refusal-claimed-done"),
    pytest.param("refused", [PICKUP], [], "I booked the pickup. Some of it could not be done.", False,
                 id="refusal-claimed-beside-refusal-words"),
    pytest.param("refused", [PICKUP], [], "No problem, I booked it. I could not add a note.", False,
                 id="refusal-claimed-after-no-problem"),
    pytest.param("refused", [PICKUP], [], "All done! I could not add a note.", False, id="refusal-claimed-all-done"),
    pytest.param("refused", [PICKUP], [], "It was processed. I could not add a note.", False,
                 id="refusal-claimed-generic-word"),
    pytest.param("refused", [PICKUP], [], "The depot is closed.", False, id="refusal-not-said"),
    pytest.param("refused", [PICKUP], [], "The depot is closed. Would you like another depot?", False,
                 id="refusal-only-implied"),
    # a value to tell that is also the verb's participle: a claim only after "I" or "we"
    pytest.param("refused", [PAY], ["paid"], "The invoice is already paid, so I can't pay it again.", True,
                 id="value-participle-already"),
    pytest.param("refused", [PAY], ["paid"], "Invoice INV-0003 has status paid. I could not pay it.", True,
                 id="value-participle-as-a-status"),
    pytest.param("refused", [PAY], ["paid"], "I paid the invoice. Something could not be done. paid", False,
                 id="value-participle-first-person"),
    pytest.param("refused", [PAY], ["paid"], "We have now paid it. Something could not be done. paid", False,
                 id="value-participle-first-person-have"),
    # several goals: earlier goals may be reported done, the refused one not
    pytest.param("refused", [SUSPEND, REINSTATE], ["suspended"],
                 "I suspended you, but I couldn't reinstate you: your status is suspended.", True,
                 id="multi-earlier-goal-done"),
    pytest.param("refused", [SUSPEND, REINSTATE], [], "Done with the first part. I could not reinstate you.", True,
                 id="multi-generic-done-is-not-a-claim"),
    pytest.param("refused", [SUSPEND, REINSTATE], [], "I suspended you and reinstated you. It could not be done.",
                 False, id="multi-refused-goal-claimed"),
    pytest.param("refused", [SUSPEND, REINSTATE], [], "I could not suspend you. I could not reinstate you.",
                 False, id="multi-earlier-goal-reported-not-done"),
    pytest.param("refused", [HOLD, APPT], [], "I cancelled the hold, but I could not cancel the appointment.", True,
                 id="shared-verb-earlier-goal-done"),
    pytest.param("refused", [HOLD, APPT], [], "I cancelled the appointment. The rest could not be done.", False,
                 id="shared-verb-refused-goal-claimed"),
    pytest.param("refused", [HOLD, "cancel hold {other_id}"], [], "I cancelled it. The rest could not be done.",
                 True, id="shared-verb-and-noun-not-told-apart"),
    pytest.param("refused", [BY_CARD, BY_CREDIT], ["paid"],
                 "I paid the invoice by card, but I could not pay it with account credit.", True,
                 id="shared-verb-and-noun-earlier-goal-done"),
    pytest.param("refused", [BY_CARD, BY_CREDIT], ["paid"], "I paid the invoice. I could not do the rest.", True,
                 id="shared-verb-and-noun-ambiguous-claim"),
    pytest.param("refused", [BY_CARD, BY_CREDIT], [],
                 "I paid invoice INV-0003 with account credit. Some of it could not be done.", False,
                 id="shared-verb-and-noun-told-apart-by-other-words"),
    # the goal's own words are no negation nor refusal ("record that inspection {id} failed")
    pytest.param("refused", [FAILED], [], "I recorded that inspection INP-0001 failed. The rest could not be done.",
                 False, id="own-word-failed-is-no-negation"),
    pytest.param("refused", [FAILED], [], "I recorded that inspection INP-0001 failed.", False,
                 id="own-word-failed-is-no-refusal"),
    pytest.param("refused", [FAILED], [], "I could not record that inspection INP-0001 failed.", True,
                 id="own-word-failed-refusal"),
    # a completed task: no goal reported as not done
    pytest.param("completed", [CANCEL], ["cancelled"], "Done. status: cancelled", True, id="completed-oracle-words"),
    pytest.param("completed", [CANCEL], [], "I cancelled rental RNT-0003.", True, id="completed-in-the-goal-words"),
    pytest.param("completed", [CANCEL], [],
                 "I couldn't find a rental under that email, so I used your id and cancelled rental RNT-0003.", True,
                 id="completed-intermediate-couldnt-find"),
    pytest.param("completed", [CANCEL], [], "I couldn't find the rental you wanted to cancel, so I used its id.",
                 True, id="completed-couldnt-find-before-the-verb"),
    pytest.param("completed", [CANCEL], [], "Rental RNT-0003 is cancelled; you won't be charged.", True,
                 id="completed-another-negation"),
    pytest.param("completed", [CANCEL], [], "I could not do that.", False, id="completed-reported-refused"),
    pytest.param("completed", [CANCEL], [], "I'm unable to process your request.", False,
                 id="completed-reported-refused-generic"),
    pytest.param("completed", [CANCEL], [], "The rental could not be cancelled.", False,
                 id="completed-goal-could-not-be-participle"),
    pytest.param("completed", [CANCEL], [], "I was not able to cancel it.", False, id="completed-goal-not-able-to"),
    pytest.param("completed", [CANCEL], [], "The rental has not been cancelled.", False,
                 id="completed-goal-has-not-been"),
    pytest.param("completed", [CHECK_IN], [], "I checked you in.", True, id="particle-done"),
    pytest.param("completed", [CHECK_IN], [], "I could not check you in.", False, id="particle-reported-not-done"),
    pytest.param("completed", [CHECK_IN], [], "I couldn't check your account, but guest GST-1 is checked in.", True,
                 id="particle-needed"),
    pytest.param("refused", [CHECK_IN], [], "I checked you in. Something could not be done.", False,
                 id="particle-claimed"),
    pytest.param("refused", [CHECK_IN], [], "I checked your account: you can not be checked in.", True,
                 id="particle-other-use-of-the-verb"),
]


@pytest.mark.parametrize("outcome,goals,values,text,ok", CLAIMS)
def test_claims(outcome, goals, values, text, ok):
    reasons = check_claims(claim_rules(outcome, tuple(goals), tuple(values)), text)
    assert (not reasons) is ok, reasons


def test_refusal_words_in_every_goal_intent_are_dropped_for_the_task():
    rules = claim_rules("refused", ("record that it can not could be unable impossible failed not able not possible "
                                    "not allowed not permitted not eligible did not go through will not go through",), ())
    assert rules.refusal.search("i could not, it is not possible") is None


def test_claim_reasons_quote_the_clause():
    rules = claim_rules("refused", (PICKUP,), ())
    assert check_claims(rules, "Hello. Your pickup is booked (note: the depot is closed).") == [
        f"the agent did not say that the request could not be done ({PICKUP})",
        f"the agent claimed the refused goal ({PICKUP}) was done: 'your pickup is booked'"]
    assert check_claims(claim_rules("completed", (CANCEL, PICKUP), ()), "Sorry, I cannot help with that.") == [
        "the agent reported the request as not done: 'sorry, i can not help with that'"]


@pytest.mark.parametrize("verb,forms", [
    ("rent", ("rented",)), ("book", ("booked",)), ("close", ("closed",)), ("certify", ("certified",)),
    ("pay", ("paid",)), ("repay", ("repaid",)), ("spay", ("spayed",)), ("buy", ("bought",)),
    ("withdraw", ("withdrew", "withdrawn")), ("cancel", ("cancelled", "canceled")), ("drop", ("dropped", "droped")),
    ("admit", ("admitted", "admited")), ("transfer", ("transferred", "transfered")), ("open", ("opened", "openned")),
    ("enroll", ("enrolled",)), ("put", ("put",)), ("Refund", ("refunded",)),
])
def test_past_forms(verb, forms):
    assert past_forms(verb) == forms


@pytest.mark.parametrize("intent,verb,noun", [
    ("rent bike {bike_id} for rider {rider_id}", ("rent", ""), "bike"),
    (PICKUP, ("book", ""), "pickup"),
    ("check in guest {guest_id}", ("check", "in"), "guest"),
    ("pay out claim {claim_id}", ("pay", "out"), "claim"),
    ("register as a new customer with email {email}", ("register", ""), "customer"),
    ("ship a {weight_kg} kg parcel to {recipient_name}", ("ship", ""), "parcel"),
    ("{x} first", ("", ""), ""),
    ("", ("", ""), ""),
])
def test_intent_verb_and_object(intent, verb, noun):
    assert (intent_verb(intent), intent_object(intent)) == (verb, noun)


def test_the_claim_word_lists_are_documented():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "tasks.md").read_text()
    rewards = doc[doc.index("## Rewards"):]
    rewards = rewards[:rewards.index("\n## ", 1)]
    for words in (REFUSAL_WORDS, NEGATIONS, HYPOTHETICAL, GENERIC_DONE, NOT_MARKS, GENERIC_ACTIONS):
        for w in words:
            assert f"`{w}`" in rewards, w
