"""core/runtime/invoke.py: the single path by which tool code runs.

Its promises: arguments are checked against the tool's JSON schema before the tool runs (naming
the argument), the call runs in a savepoint that a failure rolls back, every failure becomes a
structured error (``ToolError`` kinds kept, ``IntegrityError`` and crashes ``internal``,
``MemoryError`` ``memory``, a time-out ``timeout``), and nothing but an ``Outcome`` comes out.
"""

from __future__ import annotations

import pytest

from core.runtime.context import InvalidArgument, NotFound, PreconditionFailed, ToolContext, ToolDB
from core.runtime.invoke import ArgValidator, Outcome, invoke
from core.runtime.sandbox import load_tool

SCHEMA = {
    "type": "object",
    "properties": {
        "rider_id": {"type": "string", "maxLength": 12, "description": "who"},
        "amount": {"type": "number", "minimum": 5, "maximum": 200},
        "hours": {"type": "integer", "minimum": 1, "maximum": 12},
        "insured": {"type": "boolean"},
        "kind": {"type": "string", "enum": ["day", "week"]},
        "on": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time"},
    },
    "required": ["rider_id"],
    "additionalProperties": False,
}


def validate(args):
    """SCHEMA's validator, built per call, so every test also runs ArgValidator's constructor."""
    return ArgValidator(SCHEMA)(args)


NONE = {"amount": None, "hours": None, "insured": None, "kind": None, "on": None, "at": None}


def refused(args, message: str, argument: str | None) -> None:
    with pytest.raises(InvalidArgument) as ei:
        validate(args)
    assert ei.value.message == message
    assert ei.value.argument == argument
    assert ei.value.kind == "invalid_argument"


# ---------------------------------------------------------------- the validator


def test_valid_arguments_come_back_complete_and_in_schema_order():
    assert validate({"rider_id": "RDR-0001"}) == {"rider_id": "RDR-0001", **NONE}
    got = validate({"at": "2026-03-02T09:00:00", "kind": "day", "rider_id": "R", "amount": 5, "hours": 12.0,
             "insured": False, "on": "2026-02-28"})
    assert list(got) == list(SCHEMA["properties"])
    assert got == {"rider_id": "R", "amount": 5, "hours": 12, "insured": False, "kind": "day", "on": "2026-02-28",
                   "at": "2026-03-02T09:00:00"}
    assert type(got["hours"]) is int  # 12.0 is a whole number


@pytest.mark.parametrize("args,message,argument", [
    ([1], "arguments must be an object, got list", None),
    ("RDR-0001", "arguments must be an object, got str", None),
    (None, "arguments must be an object, got NoneType", None),
    ({}, "missing required argument 'rider_id'", "rider_id"),
    ({"rider_id": None}, "missing required argument 'rider_id'", "rider_id"),
    ({"rider_id": "R", "tip": 1}, "unknown argument 'tip' (expected: rider_id, amount, hours, insured, kind, on, at)",
     "tip"),
    ({"rider_id": 7}, "argument 'rider_id' must be a string, got 7", "rider_id"),
    ({"rider_id": "R" * 13}, "argument 'rider_id' is longer than 12 characters", "rider_id"),
    ({"rider_id": "R", "amount": "5"}, "argument 'amount' must be a number, got '5'", "amount"),
    ({"rider_id": "R", "amount": True}, "argument 'amount' must be a number, got True", "amount"),
    ({"rider_id": "R", "amount": float("inf")}, "argument 'amount' must be a number, got inf", "amount"),
    ({"rider_id": "R", "amount": float("nan")}, "argument 'amount' must be a number, got nan", "amount"),
    ({"rider_id": "R", "amount": 4.99}, "argument 'amount' must be at least 5, got 4.99", "amount"),
    ({"rider_id": "R", "amount": 200.01}, "argument 'amount' must be at most 200, got 200.01", "amount"),
    ({"rider_id": "R", "hours": 2.5}, "argument 'hours' must be a whole number, got 2.5", "hours"),
    ({"rider_id": "R", "hours": True}, "argument 'hours' must be a whole number, got True", "hours"),
    ({"rider_id": "R", "hours": "3"}, "argument 'hours' must be a whole number, got '3'", "hours"),
    ({"rider_id": "R", "hours": 0}, "argument 'hours' must be at least 1, got 0", "hours"),
    ({"rider_id": "R", "hours": 13.0}, "argument 'hours' must be at most 12, got 13", "hours"),
    ({"rider_id": "R", "insured": 1}, "argument 'insured' must be true or false, got 1", "insured"),
    ({"rider_id": "R", "kind": "month"}, "argument 'kind' must be one of day, week; got 'month'", "kind"),
    ({"rider_id": "R", "on": "2026-02-30"}, "argument 'on' must be a date YYYY-MM-DD, got '2026-02-30'", "on"),
    ({"rider_id": "R", "on": "2026-3-2"}, "argument 'on' must be a date YYYY-MM-DD, got '2026-3-2'", "on"),
    ({"rider_id": "R", "on": "20260302"}, "argument 'on' must be a date YYYY-MM-DD, got '20260302'", "on"),
    ({"rider_id": "R", "on": "2026-03-02T09:00:00"},
     "argument 'on' must be a date YYYY-MM-DD, got '2026-03-02T09:00:00'", "on"),
    ({"rider_id": "R", "at": "next tuesday"}, "argument 'at' must be an ISO date-time, got 'next tuesday'", "at"),
], ids=lambda v: repr(v)[:40])
def test_invalid_arguments_are_refused_naming_the_argument(args, message, argument):
    refused(args, message, argument)


def test_bounds_are_inclusive():
    assert validate({"rider_id": "R", "amount": 5, "hours": 12})["amount"] == 5
    assert validate({"rider_id": "R", "amount": 200.0, "hours": 1})["amount"] == 200.0
    assert validate({"rider_id": "R" * 12})["rider_id"] == "R" * 12


def test_an_open_schema_drops_unknown_arguments_and_a_closed_one_with_no_parameters_says_none():
    open_ = ArgValidator({"type": "object", "properties": {"a": {"type": "integer"}}})
    assert open_({"a": 1, "b": 2}) == {"a": 1}
    empty = ArgValidator({"type": "object", "properties": {}, "additionalProperties": False})
    assert empty({}) == {}
    with pytest.raises(InvalidArgument, match=r"^unknown argument 'x' \(expected: none\)$"):
        empty({"x": 1})


def test_strings_have_a_default_length_limit():
    v = ArgValidator({"type": "object", "properties": {"s": {"type": "string"}}})
    assert v({"s": "x" * 10_000}) == {"s": "x" * 10_000}


def test_unknown_schema_keywords_are_refused_up_front():
    with pytest.raises(ValueError, match=r"^parameter 'a': unsupported schema keyword\(s\) multipleOf, pattern$"):
        ArgValidator({"type": "object", "properties": {"a": {"type": "string", "pattern": "x", "multipleOf": 2}}})


def test_the_validator_does_not_change_the_schema_it_was_given():
    schema = {"type": "object", "properties": {"k": {"type": "string", "enum": ["a", "b"]}}}
    ArgValidator(schema)({"k": "a"})
    assert schema == {"type": "object", "properties": {"k": {"type": "string", "enum": ["a", "b"]}}}


# ---------------------------------------------------------------- outcomes


def test_outcomes_as_data():
    assert Outcome(True, result={"x": 1}).to_dict() == {"ok": True, "result": {"x": 1}}
    assert Outcome(True).kind == "ok"
    err = Outcome(False, error={"kind": "not_found", "message": "m"})
    assert err.to_dict() == {"ok": False, "error": {"kind": "not_found", "message": "m"}} and err.kind == "not_found"
    assert Outcome(False, error={"message": "m"}).kind == "error"


# ---------------------------------------------------------------- invoke


@pytest.fixture
def bike(bike_bp, seeded_db):
    db = seeded_db(bike_bp.schema)
    yield db, ToolContext(bike_bp.schema.clock)
    db.close()


ONE = ArgValidator({"type": "object", "properties": {"rider_id": {"type": "string"}}, "required": ["rider_id"],
                    "additionalProperties": False})


def test_a_successful_call_returns_its_result_and_keeps_its_writes(bike, sql):
    db, ctx = bike
    seen = {}

    def tool(tdb, c, rider_id):
        seen.update(db=tdb, ctx=c)
        tdb.update("riders", rider_id, {"status": "closed"})
        return tdb.get("riders", rider_id)

    out = invoke(tool, ONE, db, ctx, {"rider_id": "RDR-0005"})
    assert out.ok is True and out.result == sql.row(db, "riders", "RDR-0005")
    assert out.result["status"] == "closed"
    assert isinstance(seen["db"], ToolDB) and seen["ctx"] is ctx  # tools get the proxy, never the DomainDB
    assert not db.conn.in_transaction  # the savepoint was released


def test_the_tooldb_given_is_the_one_the_tool_gets(bike):
    db, ctx = bike
    proxy = ToolDB(db)
    got = invoke(lambda tdb, c, rider_id: tdb is proxy, ONE, db, ctx, {"rider_id": "x"}, tooldb=proxy)
    assert got.result is True


def test_bad_arguments_never_reach_the_tool(bike):
    db, ctx = bike
    called = []
    out = invoke(lambda *a, **k: called.append(k), ONE, db, ctx, {"rider": "RDR-0001"})
    assert out.ok is False
    assert out.to_dict() == {"ok": False, "error": {"kind": "invalid_argument", "argument": "rider",
                                                    "message": "unknown argument 'rider' (expected: rider_id)"}}
    assert called == []


def raising(exc: BaseException):
    def tool(tdb, c, rider_id):
        tdb.update("riders", rider_id, {"status": "closed"})
        tdb.insert("payments", {"rider_id": rider_id, "amount": 1, "kind": "refund", "created_at": c.now})
        raise exc
    return tool


@pytest.mark.parametrize("exc,error", [
    (NotFound("riders", "RDR-0404"), {"kind": "not_found", "message": "no riders record with id 'RDR-0404'"}),
    (PreconditionFailed("too poor", observed={"riders.balance": 1.0}),
     {"kind": "precondition", "message": "too poor", "observed": {"riders.balance": 1.0}}),
    (InvalidArgument("bad day", argument="on"), {"kind": "invalid_argument", "message": "bad day", "argument": "on"}),
    (ValueError("boom"), {"kind": "internal", "message": "the tool failed: ValueError: boom"}),
    (KeyError("x"), {"kind": "internal", "message": "the tool failed: KeyError: 'x'"}),
    (MemoryError(), {"kind": "memory", "message": "the tool ran out of memory (memory limit exceeded)"}),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "")
def test_a_failing_tool_becomes_an_error_and_is_rolled_back(bike, sql, exc, error):
    db, ctx = bike
    state = sql.state(db)
    out = invoke(raising(exc), ONE, db, ctx, {"rider_id": "RDR-0005"})
    assert out.ok is False and out.to_dict() == {"ok": False, "error": error}
    assert sql.state(db) == state
    assert not db.conn.in_transaction


def test_an_invalid_write_is_an_internal_error_and_is_rolled_back(bike, sql):
    db, ctx = bike
    state = sql.state(db)

    def tool(tdb, c, rider_id):
        tdb.update("riders", rider_id, {"balance": 0})
        tdb.update("riders", rider_id, {"status": "vip"})

    out = invoke(tool, ONE, db, ctx, {"rider_id": "RDR-0005"})
    assert out.error == {"kind": "internal", "message": "the tool wrote invalid data: riders.status cannot be 'vip' "
                                                        "(one of active, closed, suspended)"}
    assert sql.state(db) == state


def test_a_rollback_keeps_the_writes_made_before_the_call(bike, sql):
    """Inside an episode's transaction, a failed call undoes only its own writes."""
    db, ctx = bike
    db.conn.execute("BEGIN")
    assert invoke(lambda t, c, rider_id: t.update("riders", rider_id, {"status": "closed"}), ONE, db, ctx,
                  {"rider_id": "RDR-0005"}).ok
    state = sql.state(db)
    assert not invoke(raising(ValueError("x")), ONE, db, ctx, {"rider_id": "RDR-0007"}).ok
    assert db.conn.in_transaction
    assert sql.state(db) == state and sql.row(db, "riders", "RDR-0005")["status"] == "closed"
    db.conn.execute("ROLLBACK")


def test_a_tool_past_its_time_limit_is_stopped_and_rolled_back(bike, sql):
    db, ctx = bike
    state = sql.state(db)
    src = ("def spin(db, ctx, rider_id):\n    db.update('riders', rider_id, {'status': 'closed'})\n"
           "    while True:\n        pass\n")
    out = invoke(load_tool(src, "spin"), ONE, db, ctx, {"rider_id": "RDR-0005"}, seconds=0.1)
    assert out.to_dict() == {"ok": False, "error": {"kind": "timeout", "message": "time limit of 0.1 s exceeded"}}
    assert sql.state(db) == state


def test_the_time_limit_is_per_call(bike):
    db, ctx = bike
    src = "def count(db, ctx, rider_id):\n    n = 0\n    for i in range(20000):\n        n += i\n    return n\n"
    fn = load_tool(src, "count")
    assert invoke(fn, ONE, db, ctx, {"rider_id": "x"}, seconds=5).result == sum(range(20000))
    assert invoke(fn, ONE, db, ctx, {"rider_id": "x"}, seconds=0).kind == "timeout"


# ---------------------------------------------------------------- bugs found


def test_a_string_over_the_default_limit_is_an_invalid_argument(bike):
    db, ctx = bike
    v = ArgValidator({"type": "object", "properties": {"s": {"type": "string"}}})
    out = invoke(lambda t, c, s: s, v, db, ctx, {"s": "x" * 10_001})
    assert out.error == {"kind": "invalid_argument", "argument": "s",
                         "message": "argument 's' is longer than 10000 characters"}


def test_a_huge_integer_for_a_number_is_an_invalid_argument(bike):
    db, ctx = bike
    out = invoke(lambda *a, **k: 1, ArgValidator(SCHEMA), db, ctx, {"rider_id": "R", "amount": 10**400})
    assert out.kind == "invalid_argument" and out.error["argument"] == "amount"


@pytest.mark.parametrize("day", ["2026-W10-1", "20260302  "])
def test_a_date_argument_must_be_yyyy_mm_dd(day):
    refused({"rider_id": "R", "on": day}, f"argument 'on' must be a date YYYY-MM-DD, got {day!r}", "on")
