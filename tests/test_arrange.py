"""The arranger builds states for an operation; the interpreter is the judge of every one of them.

After arranging, every requirement holds; arranged to violate requirement i, exactly that one
fails; and when no arrangement exists the arranger says so (None) instead of lying.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.data.db import DomainDB
from core.data.seed import RowFactory
from core.runtime.context import ToolContext
from core.spec import expr as X
from core.spec import interp
from core.spec.blueprint import load_blueprint, parse_blueprint
from core.synthesis.arrange import Arranger
from core.synthesis.proctest import expected_outcome

LIBRARY = Path(__file__).parent / "blueprints" / "tiny_library.yaml"
SEEDS = range(5)


@pytest.fixture(scope="module")
def lib():
    bp = load_blueprint(LIBRARY)
    factory = RowFactory(bp.schema, 0)
    db = DomainDB(bp.schema)
    db.load(factory.seed_rows())
    base = db.snapshot()
    yield bp, db, base, factory, ToolContext(bp.schema.clock)
    db.close()


@pytest.fixture
def fresh(lib):
    bp, db, base, factory, ctx = lib
    db.restore(base)
    return bp, db, factory, ctx


def _arranger(db, factory, ctx, op, seed):
    return Arranger(db, factory, ctx, random.Random(seed)).bind(op)


def _truths(op, db, ctx, args) -> list[bool]:
    """Each requirement's value, as the interpreter reads it."""
    ev = interp.Evaluator(db, ctx, args)
    for lk in interp.op_lookups(op):
        ev.fetch(lk)
    return [bool(ev.eval(e)) for e, _ in op.requires]


OPS = {"lend_book": 4, "return_book": 2, "renew_loan": 3, "pay_fines": 1}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", OPS)
def test_after_arranging_every_requirement_holds(fresh, name, seed):
    bp, db, factory, ctx = fresh
    op = bp.operation(name)
    assert len(op.requires) == OPS[name]
    arr = _arranger(db, factory, ctx, op, seed)
    args = arr.arrange(op, arr.choose_args(op))
    assert args is not None
    assert _truths(op, db, ctx, args) == [True] * len(op.requires)
    assert expected_outcome(op, db, ctx, args).kind == "ok"


CASES = [(name, i) for name, n in OPS.items() for i in range(n)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name,violate", CASES, ids=[f"{n}-requirement-{i}" for n, i in CASES])
def test_violating_requirement_i_fails_only_that_one(fresh, name, violate, seed):
    bp, db, factory, ctx = fresh
    op = bp.operation(name)
    arr = _arranger(db, factory, ctx, op, seed)
    args = arr.arrange(op, arr.choose_args(op), violate=violate)
    assert args is not None
    assert _truths(op, db, ctx, args) == [i != violate for i in range(len(op.requires))]
    out = expected_outcome(op, db, ctx, args)
    req = op.requires[violate][1]
    assert out.error["kind"] == "precondition"
    assert out.error["message"] == (req.message or f"requirement not met: {req.check}")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_boundary_arrangement_puts_every_inequality_at_its_edge(fresh, seed):
    bp, db, factory, ctx = fresh
    op = bp.operation("lend_book")
    arr = _arranger(db, factory, ctx, op, seed)
    args = arr.arrange(op, arr.choose_args(op), boundary=True)
    assert args is not None and all(_truths(op, db, ctx, args))
    member = db.get("members", args["member_id"])
    assert member["fines"] == 9.99  # fines < 10, one cent below
    assert db.count("loans", member_id=args["member_id"], status="open") == member["max_loans"] - 1
    arr = _arranger(db, factory, ctx, bp.operation("pay_fines"), seed)
    args = arr.arrange(bp.operation("pay_fines"), arr.choose_args(bp.operation("pay_fines")), boundary=True)
    assert db.get("members", args["member_id"])["fines"] == 0.01  # fines > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_boundary_arrangement_puts_counts_at_their_edge(fresh, seed):
    bp, db, factory, ctx = fresh
    op = bp.operation("renew_loan")
    arr = _arranger(db, factory, ctx, op, seed)
    args = arr.arrange(op, arr.choose_args(op), boundary=True)
    assert args is not None and all(_truths(op, db, ctx, args))
    member = db.get("loans", args["loan_id"])["member_id"]
    assert db.count("loans", member_id=member, status="open") == 2  # < 3
    assert db.count("books", status="shelved") == 2  # >= 2


def test_violations_sometimes_sit_exactly_on_the_bound(lib):
    """An off-by-one in a tool (< written as <=) shows only when a violation is right at the bound."""
    bp, db, base, factory, ctx = lib
    op = bp.operation("lend_book")
    fines, counts = set(), set()
    for seed in range(10):
        for violate, seen in ((1, fines), (2, counts)):
            db.restore(base)
            for m in db.keys("members"):  # every member may borrow: the violation has to be made
                db.update("members", m, {"fines": 0, "max_loans": 3})
            arr = _arranger(db, factory, ctx, op, seed)
            args = arr.arrange(op, arr.choose_args(op), violate=violate)
            member = db.get("members", args["member_id"])
            seen.add(member["fines"] if violate == 1 else
                     db.count("loans", member_id=args["member_id"], status="open") - member["max_loans"])
    assert 10.0 in fines and min(fines) >= 10  # fines < 10 violated: at 10 sometimes, never below
    assert 0 in counts and min(counts) >= 0  # count < max_loans violated: count == max_loans sometimes


def test_fixed_arguments_are_kept_and_missing_rows_are_made(fresh):
    bp, db, factory, ctx = fresh
    op = bp.operation("lend_book")
    for book in db.keys("books"):
        db.delete("books", book)
    arr = _arranger(db, factory, ctx, op, 0)
    args = arr.choose_args(op, {"days": 3, "member_id": "MEM-0004"})
    assert args["days"] == 3 and args["member_id"] == "MEM-0004"
    assert db.keys("books") == [args["book_id"]]  # a book had to be made for the lookup
    got = arr.arrange(op, args)
    assert got is not None and got["member_id"] == "MEM-0004" and got["days"] == 3
    assert all(_truths(op, db, ctx, got))


@pytest.mark.parametrize("seed", SEEDS)
def test_chosen_arguments_fit_their_parameters(fresh, seed):
    bp, db, factory, ctx = fresh
    op = bp.operation("lend_book")
    args = _arranger(db, factory, ctx, op, seed).choose_args(op)
    assert set(args) == {"member_id", "book_id", "days"}
    assert db.get("members", args["member_id"]) and db.get("books", args["book_id"])
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 30


IMPOSSIBLE = """\
domain: impossible
derive: false
tables:
  members:
    rows: 3
    columns:
      member_id: id MEM
      fines: money 0..50
operations:
  contradiction:
    params: {member_id: members.member_id}
    requires:
      - members[member_id].fines < 5
      - members[member_id].fines > 10
    effects: ["update members[member_id] set fines = 0"]
    returns: members[member_id]
  implied:
    params: {member_id: members.member_id}
    requires:
      - members[member_id].fines < 5
      - members[member_id].fines < 20
    effects: ["update members[member_id] set fines = 0"]
    returns: members[member_id]
  always:
    params: {member_id: members.member_id}
    requires:
      - members[member_id].member_id == member_id
    effects: ["update members[member_id] set fines = 0"]
    returns: members[member_id]
"""


@pytest.fixture
def impossible():
    bp = parse_blueprint(IMPOSSIBLE, "impossible.yaml")
    factory = RowFactory(bp.schema, 0)
    db = DomainDB(bp.schema)
    db.load(factory.seed_rows())
    yield bp, db, factory, ToolContext(bp.schema.clock)
    db.close()


@pytest.mark.parametrize("name,violate", [("contradiction", None), ("implied", 1), ("always", 0)],
                         ids=["requirements that contradict each other", "violating one the other implies",
                              "violating one that always holds"])
def test_no_arrangement_is_reported_as_none(impossible, name, violate):
    bp, db, factory, ctx = impossible
    op = bp.operation(name)
    arr = _arranger(db, factory, ctx, op, 0)
    assert arr.arrange(op, arr.choose_args(op), violate=violate) is None


def test_extra_conditions_are_kept_or_the_arrangement_is_refused(fresh):
    bp, db, factory, ctx = fresh
    op = bp.operation("lend_book")
    scope = X.Scope(bp.schema, op.params)
    arr = _arranger(db, factory, ctx, op, 1)
    args = arr.choose_args(op)
    db.update("members", args["member_id"], {"name": "Ada Lovelace"})
    keep = [X.parse_expr("members[member_id].name == 'Ada Lovelace'", scope)]
    got = arr.arrange(op, dict(args), keep=keep)
    assert got is not None and db.get("members", got["member_id"])["name"] == "Ada Lovelace"
    never = [X.parse_expr("members[member_id].name == 'nobody at all'", scope)]
    assert arr.arrange(op, dict(args), keep=never) is None
