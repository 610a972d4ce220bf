"""Blueprints: a malformed one is refused with FILE:LINE: PLACE: WHAT; a valid one means what the docs say."""

from __future__ import annotations

import re

import pytest

from core.spec.blueprint import BlueprintError, load_blueprint, parse_blueprint

MINI_RENTAL = """\
domain: mini_rental
title: Mini Rental
policy: |
  Identify the rider before acting.
clock: 2026-03-02T09:00:00
tables:
  riders:
    rows: 5
    columns:
      rider_id: id RDR
      name: name
      email: email unique
      phone: phone
      balance: money 0..100
      status: enum active|suspended
  bikes:
    rows: 5
    columns:
      bike_id: id BK
      hourly_rate: money 1..5
      status: enum available|rented
  rentals:
    rows: 5
    columns:
      rental_id: id RNT
      rider_id: ref riders
      bike_id: ref bikes
      started_at: datetime -10..0
      note: text optional
      status: enum active|completed
operations:
  register_rider:
    params:
      name: riders.name
      email: riders.email
      phone: riders.phone
    requires:
      - count(riders, email=email) == 0
    effects:
      - "insert riders {name: name, email: email, phone: phone, balance: 0, status: 'active'}"
    returns: inserted
    report: [rider_id]
  start_rental:
    params:
      rider_id: riders.rider_id
      bike_id: bikes.bike_id
    requires:
      - check: riders[rider_id].status == 'active'
        message: the rider's account is not active
      - check: bikes[bike_id].status == 'available'
        message: the bike is not available
    effects:
      - "insert rentals {rider_id: rider_id, bike_id: bike_id, started_at: now, status: 'active'}"
      - update bikes[bike_id] set status = 'rented'
    returns: inserted
    report: [rental_id]
    intent: "rent bike {bike_id} for rider {rider_id}"
  top_up:
    params:
      rider_id: riders.rider_id
      amount: money 5..50
    effects:
      - update riders[rider_id] set balance += amount
    returns: riders[rider_id]
    report: [balance]
"""


def line_of(text: str, marker: str, after: str | None = None) -> int:
    """1-based number of the first line containing ``marker`` (after the line containing ``after``)."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, ln in enumerate(lines) if after in ln) + 1
    for i in range(start, len(lines)):
        if marker in lines[i]:
            return i + 1
    raise AssertionError(f"marker {marker!r} not in text")


def test_mini_blueprint_is_valid():
    bp = parse_blueprint(MINI_RENTAL, "mini.yaml")
    assert bp.name == "mini_rental"
    assert [t.name for t in bp.schema.tables] == ["riders", "bikes", "rentals"]
    assert [o.name for o in bp.operations][:3] == ["register_rider", "start_rental", "top_up"]


# (id, old, new, marker of the offending line in the new text, after, place, what the message says)
BROKEN = [
    ("unknown table in a ref", "rider_id: ref riders", "rider_id: ref ryders", "ref ryders", None,
     "tables.rentals.columns.rider_id", "unknown table 'ryders'"),
    ("unknown table in a param", "      bike_id: bikes.bike_id", "      bike_id: bicycles.bike_id",
     "bicycles.bike_id", None, "operations.start_rental.params.bike_id", "unknown table 'bicycles'"),
    ("unknown column in a param", "      phone: riders.phone", "      phone: riders.mobile", "riders.mobile", None,
     "operations.register_rider.params.phone", "no column 'mobile'"),
    ("unknown column in a requirement", "check: riders[rider_id].status ==", "check: riders[rider_id].state ==",
     "riders[rider_id].state", None, "operations.start_rental.requires[0]", "has no column 'state'"),
    ("unknown table in a count", "count(riders, email=email)", "count(riderz, email=email)", "count(riderz", None,
     "operations.register_rider.requires[0]", "unknown table 'riderz'"),
    ("unparsable requirement", "bikes[bike_id].status == 'available'", "bikes[bike_id].status === 'available'",
     "===", None, "operations.start_rental.requires[1]", "cannot parse"),
    ("unknown function", "count(riders, email=email)", "tally(riders, email=email)", "tally(", None,
     "operations.register_rider.requires[0]", "unknown function 'tally'"),
    ("bad effect syntax", "update bikes[bike_id] set status = 'rented'", "modify bikes[bike_id] status = 'rented'",
     "modify bikes", None, "operations.start_rental.effects[1]", "an effect starts with insert, update or delete"),
    ("effect sets an unknown column", "set status = 'rented'", "set state = 'rented'", "set state", None,
     "operations.start_rental.effects[1]", "has no column 'state'"),
    ("unknown name in an effect", "set balance += amount", "set balance += amt", "+= amt", None,
     "operations.top_up.effects[0]", "unknown name 'amt'"),
    ("missing returns", "    returns: riders[rider_id]\n", "", "  top_up:", None,
     "operations.top_up", "returns is missing"),
    ("report names a field that is not returned", "report: [balance]", "report: [credit]", "report: [credit]", None,
     "operations.top_up.report", "report names 'credit', which is not a returned field"),
    ("insert leaves out a required column", "phone: phone, balance: 0", "balance: 0", "insert riders", None,
     "operations.register_rider.effects[0]", "insert into riders leaves out phone"),
    ("insert gives the generated id", "{name: name, email", "{rider_id: 'RDR-9', name: name, email", "insert riders",
     None, "operations.register_rider.effects[0]", "rider_id is generated by the environment"),
    ("returns inserted without an insert", "    returns: riders[rider_id]\n", "    returns: inserted\n",
     "returns: inserted", "  top_up:", "operations.top_up.returns", "no effect inserts a row"),
    ("returns an unknown column", "    returns: riders[rider_id]\n", "    returns: {balance: 'riders[rider_id].credit'}\n",
     "returns: {balance", None, "operations.top_up.returns", "has no column 'credit'"),
    ("unknown column type", "hourly_rate: money 1..5", "hourly_rate: cash 1..5", "hourly_rate: cash", None,
     "tables.bikes.columns.hourly_rate", "unknown column type 'cash'"),
    ("money without bounds", "amount: money 5..50", "amount: money", "amount: money", None,
     "operations.top_up.params.amount", "needs bounds"),
    ("reversed bounds", "balance: money 0..100", "balance: money 100..0", "balance: money", None,
     "tables.riders.columns.balance", "reversed"),
    ("enum with one value", "status: enum available|rented", "status: enum available", "enum available", None,
     "tables.bikes.columns.status", "at least two values"),
    ("two id columns", "hourly_rate: money 1..5", "hourly_rate: id HR", "columns:", "  bikes:",
     "tables.bikes.columns", "exactly one id column (found 2)"),
    ("unknown column key", "balance: money 0..100", "balance: {type: money, min: 0, max: 100, currency: eur}",
     "balance: {type", None, "tables.riders.columns.balance", "currency"),
    ("bad table name", "  bikes:\n    rows: 5", "  Bikes:\n    rows: 5", "  Bikes:", None,
     "tables.Bikes", "must be lower_snake_case"),
    ("rows out of range", "  riders:\n    rows: 5", "  riders:\n    rows: 0", "rows: 0", None,
     "tables.riders.rows", "rows is a whole number"),
    ("intent names a non-parameter", "for rider {rider_id}", "for rider {rider}", "intent:", None,
     "operations.start_rental.intent", "intent mentions {rider}"),
    ("unknown top-level key", "title: Mini Rental", "titel: Mini Rental", "titel:", None,
     "titel", "unknown top-level key"),
    ("unknown operation key", "      - update riders[rider_id] set balance += amount\n    returns",
     "      - update riders[rider_id] set balance += amount\n    return",
     "  top_up:", None, "operations.top_up", "unknown key(s) return"),
    ("read operation with effects", "  top_up:\n    params:", "  top_up:\n    kind: read\n    params:",
     "kind: read", None, "operations.top_up.kind", "a read operation cannot have effects"),
    ("reserved parameter name", "      amount: money 5..50", "      today: money 5..50", "today: money", None,
     "operations.top_up.params.today", "'today' is a reserved name"),
    ("bad clock", "clock: 2026-03-02T09:00:00", "clock: next tuesday", "clock:", None,
     "clock", "is not an ISO date-time"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_blueprint_names_file_line_and_place(tmp_path, case):
    _, old, new, marker, after, where, what = case
    assert MINI_RENTAL.count(old) == 1, f"test setup: {old!r} must occur once"
    text = MINI_RENTAL.replace(old, new)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = line_of(text, marker, after)
    with pytest.raises(BlueprintError, match=f"(?s)^{re.escape(f'{path}:{line}: {where}: ')}.*{re.escape(what)}") as ei:
        load_blueprint(path)
    err = ei.value
    assert (err.file, err.line, err.where) == (str(path), line, where)


def test_malformed_yaml_names_file_and_line(tmp_path):
    text = MINI_RENTAL.replace("      status: enum active|suspended", "      status: [enum active|suspended")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BlueprintError, match=rf"^{re.escape(str(path))}:(\d+): not valid YAML: ") as ei:
        load_blueprint(path)
    broken = line_of(text, "status: [enum")
    assert broken <= ei.value.line <= broken + 2


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "42\n"])
def test_a_blueprint_must_be_a_mapping(text):
    with pytest.raises(BlueprintError, match=r"^odd\.yaml: a blueprint is a YAML mapping"):
        parse_blueprint(text, "odd.yaml")


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(BlueprintError, match=re.escape(f"{path}: cannot read file")):
        load_blueprint(path)


def test_report_that_is_not_a_list_is_a_blueprint_error():
    text = MINI_RENTAL.replace("report: [balance]", "report: 5")
    with pytest.raises(BlueprintError, match=r"operations\.top_up\.report"):
        parse_blueprint(text, "bad.yaml")


def test_unparsable_column_default_is_a_blueprint_error():
    text = MINI_RENTAL.replace("balance: money 0..100", "balance: 'money 0..100 default=[1'")
    with pytest.raises(BlueprintError, match=r"tables\.riders\.columns\.balance"):
        parse_blueprint(text, "bad.yaml")


# ---------------------------------------------------------------- what a valid blueprint gives


def test_line_numbers_point_into_the_real_sample(bike_path):
    """An error in a shipped blueprint points at the very line of the sample that was broken."""
    text = bike_path.read_text()
    old = "check: count(rentals, rider_id=rider_id, status='active') == 0"
    assert old in text
    bad = text.replace(old, "check: count(rentals, rider=rider_id, status='active') == 0", 1)
    with pytest.raises(BlueprintError, match=r"has no column 'rider'") as ei:
        parse_blueprint(bad, "bike.yaml")
    assert ei.value.line == line_of(bad, "rider=rider_id")
    assert ei.value.where.startswith("operations.") and ei.value.where.endswith("]")
    assert "has no column 'rider'" in str(ei.value)


def test_derived_read_tools_and_their_names():
    bp = parse_blueprint(MINI_RENTAL, "mini.yaml")
    derived = {o.name for o in bp.operations if o.spec.derived}
    assert derived == {
        "get_rider", "find_rider_by_email", "list_riders_by_status",
        "get_bike", "list_bikes_by_status",
        "get_rental", "list_rentals_by_rider", "list_rentals_by_bike", "list_rentals_by_status",
    }
    assert all(o.spec.kind == "read" for o in bp.operations if o.spec.derived)
    assert bp.operation("find_rider_by_email").spec.params[0].column == "riders.email"
    assert bp.operation("list_rentals_by_rider").spec.returns.kind == "rows"


def test_an_operation_replaces_the_derived_tool_of_the_same_name():
    text = MINI_RENTAL + """\
  get_rider:
    kind: read
    params:
      rider_id: riders.rider_id
    returns:
      balance: riders[rider_id].balance
"""
    bp = parse_blueprint(text, "mini.yaml")
    ops = [o for o in bp.operations if o.name == "get_rider"]
    assert len(ops) == 1 and not ops[0].spec.derived
    assert list(ops[0].spec.returns.fields) == ["balance"]


def test_derive_false_turns_derived_tools_off():
    bp = parse_blueprint("derive: false\n" + MINI_RENTAL, "mini.yaml")
    assert [o.name for o in bp.operations] == ["register_rider", "start_rental", "top_up"]


def test_parameters_become_a_json_schema():
    bp = parse_blueprint(MINI_RENTAL, "mini.yaml")
    schema = bp.operation("top_up").spec.parameters
    assert schema["required"] == ["rider_id", "amount"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["amount"]["type"] == "number"
    assert (schema["properties"]["amount"]["minimum"], schema["properties"]["amount"]["maximum"]) == (5, 50)
    status = bp.operation("list_riders_by_status").spec.parameters["properties"]["status"]
    assert status["enum"] == ["active", "suspended"]


# ---------------------------------------------------------------- semantics (spec interpreter and compiled code agree)

SEM = """\
domain: sem
clock: 2026-03-02T09:00:00
derive: false
tables:
  riders:
    rows: 2
    columns:
      rider_id: id RDR
      balance: money 0..100
      status: enum active|suspended
  bikes:
    rows: 2
    columns:
      bike_id: id BK
      status: enum available|rented
  rentals:
    rows: 1
    columns:
      rental_id: id RNT
      rider_id: ref riders
      bike_id: ref bikes
      bike_status: string optional
      status: enum active|completed
operations:
  rent:
    params:
      rider_id: riders.rider_id
      bike_id: bikes.bike_id
    requires:
      - check: riders[rider_id].status == 'active'
        message: first requirement
      - check: bikes[bike_id].status == 'available'
        message: second requirement
    effects:
      - update bikes[bike_id] set status = 'rented'
      - "insert rentals {rider_id: rider_id, bike_id: bike_id, bike_status: bikes[bike_id].status, status: 'active'}"
      - "insert rentals {rider_id: rider_id, bike_id: bike_id, status: 'completed'}"
    returns: inserted
  third:
    params:
      rider_id: riders.rider_id
    effects:
      - update riders[rider_id] set balance = riders[rider_id].balance / 3
    returns:
      balance: riders[rider_id].balance
      status: riders[rider_id].status
  count_after_insert:
    params:
      rider_id: riders.rider_id
      bike_id: bikes.bike_id
    effects:
      - "insert rentals {rider_id: rider_id, bike_id: bike_id, status: 'active'}"
      - "update riders[rider_id] set balance = count(rentals, rider_id=rider_id)"
    returns: riders[rider_id]
"""

SEM_ROWS = {
    "riders": [{"rider_id": "RDR-0001", "balance": 10.0, "status": "active"},
               {"rider_id": "RDR-0002", "balance": 50.0, "status": "suspended"}],
    "bikes": [{"bike_id": "BK-0001", "status": "available"}, {"bike_id": "BK-0002", "status": "rented"}],
    "rentals": [],
}


def _call(sql, op_name: str, args: dict):
    """Run an operation both ways (specification interpreter, compiled source in the sandbox).

    Both ways write through a ``DomainDB``, so a DomainDB bug would look the same to both: the
    databases are also read back with plain SQL (the ``sql`` fixture), and checked against it."""
    from core.data.db import DomainDB
    from core.runtime.context import ToolContext
    from core.runtime.invoke import ArgValidator, invoke
    from core.runtime.sandbox import load_tool
    from core.synthesis.codegen import compile_operation
    from core.synthesis.proctest import expected_outcome

    bp = parse_blueprint(SEM, "sem.yaml")
    op = bp.operation(op_name)
    ctx = ToolContext(bp.schema.clock)
    spec_db, code_db = DomainDB(bp.schema), DomainDB(bp.schema)
    spec_db.load(SEM_ROWS)
    code_db.load(SEM_ROWS)
    want = expected_outcome(op, spec_db, ctx, args)
    fn = load_tool(compile_operation(op, bp.schema), op.name)
    got = invoke(fn, ArgValidator(op.spec.parameters), code_db, ctx, args)
    assert got.to_dict() == want.to_dict()
    assert sql.state(code_db) == sql.state(spec_db)
    assert code_db.dump() == sql.state(code_db)  # what DomainDB reads is what the tables hold
    return got, code_db


def _seed(table: str) -> list[dict]:
    return sorted(SEM_ROWS[table], key=lambda r: next(iter(r.values())))


def test_lookups_come_before_requirements(sql):
    got, db = _call(sql, "rent", {"rider_id": "RDR-0002", "bike_id": "BK-0404"})  # rider suspended AND bike missing
    assert got.kind == "not_found"
    assert sql.state(db) == {t: _seed(t) for t in SEM_ROWS}


def test_requirements_are_checked_in_order(sql):
    got, db = _call(sql, "rent", {"rider_id": "RDR-0002", "bike_id": "BK-0002"})  # both requirements fail
    assert got.kind == "precondition"
    assert got.error["message"] == "first requirement"
    assert got.error["observed"] == {"riders.status": "suspended"}
    assert sql.state(db) == {t: _seed(t) for t in SEM_ROWS}


def test_effects_read_the_pre_state_and_inserted_is_the_last_insert(sql):
    got, db = _call(sql, "rent", {"rider_id": "RDR-0001", "bike_id": "BK-0001"})
    assert got.ok
    first, second = sql.rows(db, "rentals")
    assert first["bike_status"] == "available"  # read before the update effect
    assert (first["status"], second["status"], second["bike_status"]) == ("active", "completed", None)
    assert sql.row(db, "bikes", "BK-0001")["status"] == "rented"
    assert sql.row(db, "bikes", "BK-0002") == SEM_ROWS["bikes"][1]
    assert got.result == second


def test_returns_read_the_post_state_and_money_is_rounded(sql):
    got, db = _call(sql, "third", {"rider_id": "RDR-0001"})
    assert got.result == {"balance": 3.33, "status": "active"}
    assert sql.row(db, "riders", "RDR-0001")["balance"] == 3.33
    assert sql.row(db, "riders", "RDR-0002") == SEM_ROWS["riders"][1]


def test_aggregates_in_effects_see_earlier_effects(sql):
    """Row fields in effects read the pre-state; counts and sums run when their effect runs."""
    got, db = _call(sql, "count_after_insert", {"rider_id": "RDR-0001", "bike_id": "BK-0001"})
    before = sum(r["rider_id"] == "RDR-0001" for r in SEM_ROWS.get("rentals", []))
    assert got.result["balance"] == before + 1
    assert sql.row(db, "riders", "RDR-0001")["balance"] == before + 1
    assert len(sql.rows(db, "rentals")) == len(SEM_ROWS["rentals"]) + 1


def test_a_lookup_by_an_inserted_value_is_a_blueprint_error(bike_path):
    text = bike_path.read_text().replace(
        "      - update bikes[bike_id] set status = 'rented', station_id = null\n",
        "      - update bikes[inserted.bike_id] set status = 'rented', station_id = null\n", 1)
    with pytest.raises(BlueprintError, match=r"effects\[1\]: a row cannot be looked up by inserted"):
        parse_blueprint(text, "x.yaml")
