"""The specification interpreter: the oracle every tool is tested against (docs/blueprints.md, "Semantics").

Lookups first (``not_found``), then requirements in order (``precondition`` with the message
and the observed values), then effects reading the pre-state, then returns reading the post-state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data.db import DomainDB
from core.data.seed import RowFactory
from core.runtime.context import NotFound, PreconditionFailed, ToolContext
from core.spec import interp
from core.spec.blueprint import load_blueprint
from core.synthesis.proctest import expected_outcome

LIBRARY = Path(__file__).parent / "blueprints" / "tiny_library.yaml"
M, B = "MEM-0001", "BOOK-0001"
COUNT = "count(loans, member_id=member_id, status='open')"


@pytest.fixture(scope="module")
def lib():
    bp = load_blueprint(LIBRARY)
    db = DomainDB(bp.schema)
    db.load(RowFactory(bp.schema, 0).seed_rows())
    base = db.snapshot()
    yield bp, db, base, ToolContext(bp.schema.clock)
    db.close()


@pytest.fixture
def ready(lib):
    """MEM-0001 may borrow BOOK-0001: active, no fines, room for 2 loans, none open; the book shelved."""
    bp, db, base, ctx = lib
    db.restore(base)
    db.update("members", M, {"status": "active", "fines": 0, "max_loans": 2})
    db.update_where("loans", {"member_id": M, "status": "open"}, {"status": "returned"})
    db.update("books", B, {"status": "shelved"})
    db.mark()
    return bp, db, ctx


def _lend(days=7):
    return {"member_id": M, "book_id": B, "days": days}


def test_ok_applies_the_effects_and_returns_the_inserted_row(ready):
    bp, db, ctx = ready
    before = {t: db.count(t) for t in ("members", "books", "loans")}
    out = expected_outcome(bp.operation("lend_book"), db, ctx, _lend(7))
    assert out.ok and out.kind == "ok"
    assert out.result == {"loan_id": "LN-0011", "member_id": M, "book_id": B, "due_on": "2026-03-09", "status": "open"}
    assert db.get("books", B)["status"] == "lent"
    assert db.changes() == {"loans": {"LN-0011": out.result}, "books": {B: {**db.get("books", B), "status": "lent"}}}
    assert {t: db.count(t) for t in before} == {**before, "loans": before["loans"] + 1}


def test_new_ids_continue_the_count(ready):
    bp, db, ctx = ready
    db.update("members", M, {"max_loans": 5})
    first = interp.run(bp.operation("lend_book"), db, ctx, _lend())
    db.update("books", B, {"status": "shelved"})
    second = interp.run(bp.operation("lend_book"), db, ctx, _lend())
    assert (first["loan_id"], second["loan_id"]) == ("LN-0011", "LN-0012")


# (what is wrong, changes to the ready state, arguments, the error: message and observed values)
PRECONDITIONS = [
    ("suspended", {"members": {"status": "suspended"}}, _lend(),
     "the member is not active", {"members.status": "suspended"}),
    ("suspended and owing: the first requirement is reported", {"members": {"status": "suspended", "fines": 20}},
     _lend(), "the member is not active", {"members.status": "suspended"}),
    ("owing", {"members": {"fines": 12.5}}, _lend(), "the member owes too much", {"members.fines": 12.5}),
    ("owing exactly the bound", {"members": {"fines": 10}}, _lend(), "the member owes too much",
     {"members.fines": 10.0}),
    ("too many loans", {"members": {"max_loans": 0}}, _lend(), "the member has too many books",
     {COUNT: 0, "members.max_loans": 0}),
    ("the book is lost", {"books": {"status": "lost"}}, _lend(), "the book is not on the shelf",
     {"books.status": "lost"}),
]


@pytest.mark.parametrize("changes,args,message,observed", [p[1:] for p in PRECONDITIONS],
                         ids=[p[0] for p in PRECONDITIONS])
def test_the_first_false_requirement_fails_with_its_message_and_what_it_read(ready, changes, args, message, observed):
    bp, db, ctx = ready
    for table, values in changes.items():
        db.update(table, M if table == "members" else B, values)
    before = db.state_hash()
    with pytest.raises(PreconditionFailed, match=f"^{message}$") as ei:
        interp.run(bp.operation("lend_book"), db, ctx, args)
    assert ei.value.observed == observed
    assert db.state_hash() == before  # requirements are checked before any effect
    assert expected_outcome(bp.operation("lend_book"), db, ctx, args).error == {
        "kind": "precondition", "message": message, "observed": observed}


def test_a_count_requirement_reports_the_count_it_saw(ready):
    bp, db, ctx = ready
    db.update("members", M, {"max_loans": 2})
    first = interp.run(bp.operation("lend_book"), db, ctx, _lend())
    db.update("books", "BOOK-0002", {"status": "shelved"})
    interp.run(bp.operation("lend_book"), db, ctx, {**_lend(), "book_id": "BOOK-0002"})
    out = expected_outcome(bp.operation("lend_book"), db, ctx, {**_lend(), "book_id": "BOOK-0003"})
    assert out.error == {"kind": "precondition", "message": "the member has too many books",
                         "observed": {COUNT: 2, "members.max_loans": 2}}
    assert first["status"] == "open" and db.count("loans", member_id=M, status="open") == 2


def test_without_a_message_the_requirement_itself_is_the_message(ready):
    bp, db, ctx = ready
    loan = db.select("loans", status="returned")[0]["loan_id"]
    out = expected_outcome(bp.operation("return_book"), db, ctx, {"loan_id": loan})
    assert out.error == {"kind": "precondition", "message": "requirement not met: loans[loan_id].status == 'open'",
                         "observed": {"loans.status": "returned"}}


def test_a_missing_row_is_not_found_before_any_requirement_is_looked_at(ready):
    bp, db, ctx = ready
    db.update("members", M, {"status": "suspended"})  # requirement 0 would fail ...
    before = db.state_hash()
    with pytest.raises(NotFound, match=r"^no books record with id 'BOOK-X404'$") as ei:
        interp.run(bp.operation("lend_book"), db, ctx, {**_lend(), "book_id": "BOOK-X404"})  # ... but the book is gone
    assert (ei.value.table, ei.value.key) == ("books", "BOOK-X404")
    assert expected_outcome(bp.operation("lend_book"), db, ctx, {**_lend(), "member_id": "MEM-X404"}).error == {
        "kind": "not_found", "message": "no members record with id 'MEM-X404'"}
    assert db.state_hash() == before


def test_a_row_reached_through_a_reference_that_is_gone_is_not_found(ready):
    bp, db, ctx = ready
    loan = db.select("loans", status="open")[0]
    db.delete("books", loan["book_id"])
    out = expected_outcome(bp.operation("return_book"), db, ctx, {"loan_id": loan["loan_id"]})
    assert out.error == {"kind": "not_found", "message": f"no books record with id {loan['book_id']!r}"}
    assert db.get("loans", loan["loan_id"])["status"] == "open"


def test_bad_arguments_are_refused_before_the_specification_runs(ready):
    bp, db, ctx = ready
    out = expected_outcome(bp.operation("lend_book"), db, ctx, {**_lend(), "days": 31})
    assert out.kind == "invalid_argument" and out.error["argument"] == "days"


def test_effects_read_the_pre_state_and_returns_the_post_state(ready):
    bp, db, ctx = ready
    loan = db.select("loans", status="open")[0]
    db.update("loans", loan["loan_id"], {"due_on": "2026-02-20"})  # 10 days late
    member = loan["member_id"]
    db.update("members", member, {"fines": 1})
    db.update("books", loan["book_id"], {"status": "lent"})
    got = interp.run(bp.operation("return_book"), db, ctx, {"loan_id": loan["loan_id"]})
    # the book and the member are found through the loan as it was before it was returned
    assert got == {**loan, "due_on": "2026-02-20", "status": "returned"}
    assert db.get("books", loan["book_id"])["status"] == "shelved"
    assert db.get("members", member)["fines"] == 4.5  # 1 + 10 days * 0.35, rounded to the cent when written


def test_two_additions_to_one_column_both_start_from_the_pre_state(ready):
    bp, db, ctx = ready
    db.update("members", M, {"fines": 1})
    got = interp.run(bp.operation("charge_twice"), db, ctx, {"member_id": M, "amount": 0.333})
    assert got["fines"] == 1.67  # 1 + 2 * 0.333, not 1 + 0.333 + 0.666; money is rounded when written
    assert db.get("members", M)["fines"] == 1.67


def test_a_mapping_return_reads_every_value_after_the_effects(ready):
    bp, db, ctx = ready
    lent_value = db.sum("books", "price", status="lent")
    before = interp.run(bp.operation("member_summary"), db, ctx, {"member_id": M})
    assert before == {"member_id": M, "fines": 0.0, "open_loans": 0, "book_value": round(lent_value, 2)}
    interp.run(bp.operation("lend_book"), db, ctx, _lend())
    after = interp.run(bp.operation("member_summary"), db, ctx, {"member_id": M})
    price = db.get("books", B)["price"]
    assert after == {**before, "open_loans": 1, "book_value": round(lent_value + price, 2)}


def test_a_mapping_return_after_effects_reads_the_rows_again(ready):
    bp, db, ctx = ready
    db.update("members", M, {"fines": 7.5})
    assert interp.run(bp.operation("pay_fines"), db, ctx, {"member_id": M}) == {
        "member_id": M, "paid": 0.0, "open_loans": 0}


def test_not_in_a_list(ready):
    bp, db, ctx = ready
    loan = db.select("loans", status="open")[0]
    db.update("books", loan["book_id"], {"status": "lost"})
    out = expected_outcome(bp.operation("return_book"), db, ctx, {"loan_id": loan["loan_id"]})
    assert out.error == {"kind": "precondition", "message": "the book was reported lost",  # with the key it read
                         "observed": {"books.status": "lost", "loans.book_id": loan["book_id"]}}
    db.update("books", loan["book_id"], {"status": "lent"})
    assert expected_outcome(bp.operation("return_book"), db, ctx, {"loan_id": loan["loan_id"]}).ok


def test_list_returns_are_ordered_by_key_and_find_returns_exactly_one_row(ready):
    bp, db, ctx = ready
    loans = interp.run(bp.operation("open_loans"), db, ctx, {"member_id": "MEM-0002"})
    assert loans == sorted(db.select("loans", member_id="MEM-0002", status="open"), key=lambda r: r["loan_id"])
    assert [r["loan_id"] for r in loans] == sorted(r["loan_id"] for r in loans)
    email = db.get("members", M)["email"]
    assert interp.run(bp.operation("find_member_by_email"), db, ctx, {"email": email}) == db.get("members", M)
    assert interp.run(bp.operation("members_with_email"), db, ctx, {"email": email}) == [db.get("members", M)]
    assert interp.run(bp.operation("members_with_email"), db, ctx, {"email": "nobody@example.com"}) == []
    out = expected_outcome(bp.operation("find_member_by_email"), db, ctx, {"email": "nobody@example.com"})
    assert out.error == {"kind": "not_found", "message": "no members record with id 'nobody@example.com'"}


def test_check_names_the_first_failing_requirement_and_observed_what_it_read(ready):
    bp, db, ctx = ready
    op = bp.operation("lend_book")
    ev = interp.Evaluator(db, ctx, _lend())
    assert interp.check(op, ev) is None
    db.update("books", B, {"status": "lent"})
    db.update("members", M, {"fines": 30})
    ev = interp.Evaluator(db, ctx, _lend())
    assert interp.check(op, ev) == 1
    assert [interp.observed(e, ev) for e, _ in op.requires] == [
        {"members.status": "active"}, {"members.fines": 30.0}, {COUNT: 0, "members.max_loans": 2},
        {"books.status": "lent"}]


def test_lookups_are_listed_inner_keys_first(lib):
    bp = lib[0]
    from core.spec import expr as X

    assert [X.render(lk) for lk in interp.op_lookups(bp.operation("return_book"))] == [
        "loans[loan_id]", "books[loans[loan_id].book_id]", "members[loans[loan_id].member_id]"]
