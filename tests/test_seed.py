"""Seed data: the same seed gives the same rows in any process; rows respect the schema."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from core.data.seed import RowFactory, table_order
from core.spec.blueprint import BlueprintError, load_blueprint, parse_blueprint

SHOP = Path(__file__).parent / "blueprints" / "seed_shop.yaml"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shop():
    return load_blueprint(SHOP)


@pytest.fixture(scope="module")
def rows(shop):
    return RowFactory(shop.schema, 0).seed_rows()


def _dump(rows) -> str:
    return json.dumps(rows, sort_keys=True)


# ---------------------------------------------------------------- determinism


def test_same_seed_same_rows_other_seed_other_rows(shop, rows):
    assert RowFactory(shop.schema, 0).seed_rows() == rows
    other = RowFactory(shop.schema, 1).seed_rows()
    assert other != rows
    for table in ("customers", "products", "orders"):  # every table differs, not just one column
        assert other[table] != rows[table]
    assert [r["email"] for r in other["customers"]] != [r["email"] for r in rows["customers"]]


def test_a_factory_is_not_shifted_by_another_one(shop, rows):
    """Each factory has its own Faker and random generator."""
    a, b = RowFactory(shop.schema, 0), RowFactory(shop.schema, 5)
    b.seed_rows()
    first = a.seed_rows()
    b.seed_rows()
    assert first == rows


SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from core.spec.blueprint import load_blueprint
from core.data.seed import RowFactory
bp = load_blueprint({path!r})
sys.stdout.write(json.dumps(RowFactory(bp.schema, 0).seed_rows(), sort_keys=True))
"""


def test_the_rows_do_not_depend_on_the_hash_seed(rows):
    out = []
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT), path=str(SHOP))],
                              capture_output=True, env=env, timeout=120, check=True)
        out.append(done.stdout)
    assert out[0] == out[1] == _dump(rows).encode()


def test_scale_multiplies_the_row_counts(shop):
    counts = {t.name: t.rows for t in shop.schema.tables}
    assert {t: len(r) for t, r in RowFactory(shop.schema, 0).seed_rows().items()} == counts
    assert {t: len(r) for t, r in RowFactory(shop.schema, 0).seed_rows(2.99).items()} == {
        t: round(2.99 * n) for t, n in counts.items()}  # to the nearest whole row
    assert {t: len(r) for t, r in RowFactory(shop.schema, 0).seed_rows(0.001).items()} == dict.fromkeys(counts, 1)


# ---------------------------------------------------------------- rows respect the schema


def _values(rows, table, column):
    return [r[column] for r in rows[table]]


def test_ids_are_the_prefix_and_a_running_number(shop, rows):
    for t in shop.schema.tables:
        prefix = t.column(t.primary_key).prefix
        assert _values(rows, t.name, t.primary_key) == [f"{prefix}-{i:04d}" for i in range(1, t.rows + 1)]


def test_unique_columns_are_unique(shop, rows):
    uniques = [(t.name, c.name) for t in shop.schema.tables for c in t.columns if c.unique]
    assert uniques == [("customers", "email"), ("products", "sku"), ("coupons", "code")]
    for table, col in uniques:
        vals = _values(rows, table, col)
        assert None not in vals and len(set(vals)) == len(vals), (table, col)


def test_references_point_at_existing_rows(shop, rows):
    refs = [(t, c) for t in shop.schema.tables for c in t.columns if c.type == "ref"]
    assert len(refs) == 6
    for t, c in refs:
        keys = set(_values(rows, c.table, shop.schema.table(c.table).primary_key))
        present = [v for v in _values(rows, t.name, c.name) if v is not None]
        assert present and set(present) <= keys, (t.name, c.name)
    # a non-nullable reference is never empty; a self reference never points at its own row
    assert None not in _values(rows, "orders", "customer_id") + _values(rows, "orders", "product_id")
    for table, col, pk in [("customers", "referred_by", "customer_id"), ("products", "parent_id", "product_id"),
                           ("slots", "owner", "slot_id")]:
        assert all(r[col] != r[pk] for r in rows[table]), table
        assert {r[col] for r in rows[table]} - {None}  # some rows do reference another
    assert None not in _values(rows, "slots", "owner")


@pytest.mark.parametrize("seed", range(8))
def test_a_self_reference_in_a_two_row_table_points_at_the_other_row(seed):
    bp = parse_blueprint("domain: pair\nderive: false\ntables:\n  t:\n    rows: 2\n    columns:\n"
                         "      t_id: id T\n      other: ref t\n", "pair.yaml")
    assert [r["other"] for r in RowFactory(bp.schema, seed).seed_rows()["t"]] == ["T-0002", "T-0001"]


def test_numbers_stay_in_bounds_with_their_precision(shop, rows):
    numbers = [(t, c) for t in shop.schema.tables for c in t.columns if c.type in ("int", "money", "float")]
    assert len(numbers) == 8
    for t, c in numbers:
        vals = _values(rows, t.name, c.name)
        assert all(c.min <= v <= c.max for v in vals), (t.name, c.name)
        assert len(set(vals)) > 1, (t.name, c.name)  # not one constant
    assert all(type(v) is int for v in _values(rows, "orders", "quantity") + _values(rows, "products", "stock"))
    assert all(round(v, 2) == v for v in _values(rows, "products", "price") + _values(rows, "customers", "credit"))
    assert all(round(v, 3) == v for v in _values(rows, "products", "weight"))
    assert any(v < 0 for v in _values(rows, "customers", "credit"))  # negative bounds are used too
    assert {type(v) for v in _values(rows, "customers", "vip")} == {bool}
    assert set(_values(rows, "customers", "vip")) == {True, False}


def test_narrow_bounds_are_reached_at_both_ends_and_never_passed(shop, rows):
    clock = datetime.fromisoformat(shop.schema.clock)
    assert set(_values(rows, "slots", "level")) == {3, 4}
    assert set(_values(rows, "slots", "day")) == {(clock.date() - timedelta(days=1)).isoformat(), clock.date().isoformat()}
    assert {v[:10] for v in _values(rows, "slots", "at")} == {clock.date().isoformat(),
                                                                (clock.date() + timedelta(days=1)).isoformat()}
    assert all(clock <= datetime.fromisoformat(v) <= clock + timedelta(days=1) for v in _values(rows, "slots", "at"))
    assert set(_values(rows, "slots", "rate")) == {2.0, 2.01}


def test_enums_take_only_their_values_and_use_them(shop, rows):
    assert set(_values(rows, "orders", "status")) == {"open", "paid", "shipped", "cancelled"}
    assert set(_values(rows, "products", "kind")) == {"book", "game", "tool"}


def test_dates_are_relative_to_the_clock(shop, rows):
    clock = datetime.fromisoformat(shop.schema.clock)
    joined = [date.fromisoformat(v) for v in _values(rows, "customers", "joined_on")]
    assert all(clock.date() - timedelta(days=900) <= d <= clock.date() - timedelta(days=10) for d in joined)
    expires = [date.fromisoformat(v) for v in _values(rows, "coupons", "expires_on")]
    assert all(clock.date() + timedelta(days=1) <= d <= clock.date() + timedelta(days=90) for d in expires)
    for v in _values(rows, "orders", "placed_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", v), v  # to the second
        assert clock - timedelta(days=30) <= datetime.fromisoformat(v) <= clock - timedelta(days=1)


def test_text_columns_look_like_their_type(rows):
    for r in rows["customers"]:
        assert re.fullmatch(r"555-\d{3}-\d{4}", r["phone"]), r["phone"]
        local = r["email"].split("@")[0]
        parts = re.sub(r"[^a-z ]", "", r["name"].lower()).split()
        assert local == ".".join(parts[-2:]), (r["name"], r["email"])  # built from the row's name
        assert r["name"] and r["first"] and r["last"] and r["company"] and r["address"] and r["city"]
    assert all(re.fullmatch(r"SK\d{4}-[A-Z]{2}", v) for v in _values(rows, "products", "sku"))
    assert all(re.fullmatch(r"CP-\d{4}", v) for v in _values(rows, "coupons", "code"))
    notes = _values(rows, "customers", "note")
    assert None in notes and all(n is None or (n and not n.endswith(".")) for n in notes)  # nullable text
    assert all(n is not None for n in _values(rows, "customers", "phone"))


def test_make_row_avoids_unique_values_of_existing_rows_it_did_not_make(shop, rows):
    customers = shop.schema.table("customers")
    keys = {t: _values(rows, t, shop.schema.table(t).primary_key) for t in rows}
    existing = [RowFactory(shop.schema, 3).make_row(customers, keys, pk=f"CUS-{i}") for i in range(5)]
    # a second factory with the same seed would draw the very same emails: it must step around them
    again = [RowFactory(shop.schema, 3).make_row(customers, keys, existing, pk=f"CUS-{i}") for i in range(5)]
    assert not {r["email"] for r in existing} & {r["email"] for r in again}


def test_make_row_keeps_unique_values_apart_from_existing_rows(shop, rows):
    f = RowFactory(shop.schema, 0)
    customers = shop.schema.table("customers")
    keys = {t: _values(rows, t, shop.schema.table(t).primary_key) for t in rows}
    existing = rows["customers"]
    taken = set(_values(rows, "customers", "email"))
    made = [f.make_row(customers, keys, existing, pk=f"CUS-{900 + i}") for i in range(20)]
    emails = [r["email"] for r in made]
    assert not taken & set(emails) and len(set(emails)) == 20
    assert [r["customer_id"] for r in made] == [f"CUS-{900 + i}" for i in range(20)]
    over = f.make_row(customers, keys, existing, overrides={"vip": True, "credit": 1.5}, pk="CUS-999")
    assert over["vip"] is True and over["credit"] == 1.5


def test_a_unique_column_too_small_for_its_rows_is_refused():
    bp = parse_blueprint("domain: u\nderive: false\ntables:\n  t:\n    rows: 5\n    columns:\n      t_id: id T\n"
                         "      n: int 1..3 unique\n", "u.yaml")
    with pytest.raises(ValueError, match=r"t\.n: cannot find a unique value after 60 tries"):
        RowFactory(bp.schema, 0).seed_rows()


@pytest.mark.xfail(strict=True, raises=pytest.fail.Exception,
                   reason=("core/data/seed.py unique_value varies a string that keeps colliding by appending a number, "
                           "also for enum columns: `enum a|b unique` with 5 rows seeds 'a21', a value outside the "
                           "enum, and DomainDB.load accepts it"))
def test_a_unique_enum_never_gets_values_outside_the_enum():
    bp = parse_blueprint("domain: u\nderive: false\ntables:\n  t:\n    rows: 5\n    columns:\n      t_id: id T\n"
                         "      kind: enum a|b unique\n", "u.yaml")
    with pytest.raises(ValueError, match="unique"):
        RowFactory(bp.schema, 0).seed_rows()


# ---------------------------------------------------------------- table order


def test_table_order_puts_referenced_tables_first(shop):
    order = [t.name for t in table_order(shop.schema)]
    assert sorted(order) == sorted(t.name for t in shop.schema.tables)
    pos = {n: i for i, n in enumerate(order)}
    refs = [(c.table, t.name) for t in shop.schema.tables for c in t.columns if c.type == "ref" and c.table != t.name]
    assert sorted(refs) == [("coupons", "orders"), ("customers", "orders"), ("products", "orders")]
    assert all(pos[a] < pos[b] for a, b in refs)
    # independent tables come in name order, so the order never depends on the file's order
    assert order == ["coupons", "customers", "products", "orders", "slots"]


def test_tables_referencing_each_other_are_refused():
    text = ("domain: loop\ntables:\n  a:\n    columns:\n      a_id: id A\n      b_id: ref b\n"
            "  b:\n    columns:\n      b_id: id B\n      c_id: ref c\n"
            "  c:\n    columns:\n      c_id: id C\n      a_id: ref a\n")
    with pytest.raises(BlueprintError, match=r"tables reference each other in a cycle: ") as ei:
        parse_blueprint(text, "loop.yaml")
    assert ei.value.where == "tables"
    cycle = re.search(r"cycle: (\w) -> (\w) -> (\w); make one of the references nullable", ei.value.message)
    assert cycle and set(cycle.groups()) == {"a", "b", "c"}
