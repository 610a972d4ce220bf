"""bench/validity.py: a tiny run end to end, and its hand-written parts (AUC, ownership, "asked for")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.models import Column, DomainSchema, Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import validity  # noqa: E402

KEYS = {"tasks", "foreign_row_goals", "anonymous_on_owned_rows", "staff_ops_as_customer_goals",
        "invariant_violations", "unrequested_values", "unrequested_values_tasks", "refusal_auc",
        "min_openings_per_domain", "openings", "per_domain", "seconds"}


def test_tiny_run_prints_every_key_last():
    p = subprocess.run([sys.executable, "bench/validity.py", "--domains", "bike_rental", "--n", "12"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert lines[0].startswith("bike_rental ")
    d = json.loads(lines[-1])
    assert KEYS <= set(d)
    assert d["tasks"] == 12  # what was generated: -n 12 of bike_rental
    assert set(d["per_domain"]) == {"bike_rental"} and d["per_domain"]["bike_rental"]["tasks"] == 12
    # no blueprint says who may ask for an operation, nor states invariants: not measurable, not 0
    assert d["staff_ops_as_customer_goals"] is None and d["invariant_violations"] is None
    assert any(ln.startswith("staff_ops_as_customer_goals: null") for ln in lines)
    for k in ("foreign_row_goals", "anonymous_on_owned_rows", "unrequested_values_tasks"):
        assert isinstance(d[k], int) and 0 <= d[k] <= d["tasks"]
    assert d["unrequested_values"] >= d["unrequested_values_tasks"]
    assert d["refusal_auc"] is None or 0.0 <= d["refusal_auc"] <= 1.0
    assert d["openings"] == {"bike_rental": d["min_openings_per_domain"]} and d["min_openings_per_domain"] >= 1
    assert d["seconds"] > 0


@pytest.mark.parametrize("argv", [["--n", "0"], ["--domains", "no_such_domain"], ["--bogus"],
                                  ["--workspace", "/nonexistent/validity-ws"]])
def test_bad_arguments_are_one_line_and_exit_2(argv):
    p = subprocess.run([sys.executable, "bench/validity.py", *argv], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert p.returncode == 2
    assert p.stdout == ""
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("validity: error: ")


# ----------------------------------------------------------------------------------------- AUC

def test_auc_by_hand():
    assert validity.auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert validity.auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert validity.auc([0.5] * 4, [0, 1, 0, 1]) == 0.5  # ties count half
    # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4
    assert validity.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    # one tie among the four pairs: (0.4 vs 0.4) counts half -> 3.5 / 4
    assert validity.auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == 0.875
    assert validity.auc([0.1, 0.2], [1, 1]) is None


def test_cv_auc_separates_a_telling_word_and_not_noise():
    texts = [f"please do thing {i} now" for i in range(20)] + [f"please do thing {i} blocked" for i in range(20)]
    labels = [0] * 20 + [1] * 20
    assert validity.cv_auc(texts, labels) == 1.0
    same = [f"please do thing {i}" for i in range(40)]  # ids become one placeholder: nothing to learn
    assert validity.cv_auc(same, labels) == 0.5
    assert validity.cv_auc(texts, [0] * 40) is None


def test_tokens_hide_ids_emails_and_numbers():
    t = validity.tokens("Hi, I'm Ann (email ann.lee@x.com). Return RNT-0023 after 4 hours, cost 22.8")
    assert "rnt" not in t and "0023" not in " ".join(t) and "ann.lee" not in " ".join(t)
    assert "xemailx" in t and t.count("xnumx") == 3 and "return xnumx" in t


# ----------------------------------------------------------------------------------------- ownership

def test_bike_rental_ownership_paths(bike_bp):
    schema = bike_bp.schema
    cust = validity.customer_table(schema)
    assert cust.name == "riders"
    paths = validity.owner_paths(schema, cust.name)
    assert paths["riders"] == [[]]
    assert paths["rentals"] == [[("rentals", "rider_id", "riders")]]
    assert paths["payments"] == [[("payments", "rider_id", "riders")]]
    assert paths["passes"] == [[("passes", "rider_id", "riders")]]
    assert paths["repair_tickets"] == [[("repair_tickets", "reported_by", "riders")]]
    assert "bikes" not in paths and "stations" not in paths  # unowned


def test_bike_rental_row_owners(bike_bp, seeded_db):
    schema = bike_bp.schema
    paths = validity.owner_paths(schema, "riders")
    db = seeded_db(schema)
    for table in ("rentals", "payments", "passes"):
        row = db.select(table)[0]
        pk = schema.table(table).primary_key
        assert validity.row_owners(db, paths, table, row[pk]) == {row["rider_id"]}
    rider = db.select("riders")[0]["rider_id"]
    assert validity.row_owners(db, paths, "riders", rider) == {rider}
    assert validity.row_owners(db, paths, "bikes", db.select("bikes")[0]["bike_id"]) == set()
    assert validity.row_owners(db, paths, "stations", db.select("stations")[0]["station_id"]) == set()
    assert validity.row_owners(db, paths, "rentals", "RNT-9999") == set()  # no such row


def _t(name: str, *cols: Column) -> Table:
    return Table(name=name, singular=name[:-1], primary_key=f"{name}_id",
                 columns=[Column(name=f"{name}_id", type="id", prefix=name[:3].upper()), *cols])


def test_paths_are_shortest_with_ties_and_no_cycles():
    ref = lambda n, t: Column(name=n, type="ref", table=t)  # noqa: E731
    schema = DomainSchema(name="x", title="x", tables=[
        _t("customers", Column(name="name", type="name"), Column(name="email", type="email", unique=True)),
        _t("orders", ref("customer_id", "customers")),
        _t("items", ref("order_id", "orders"), ref("shelf_id", "shelves")),
        _t("transfers", ref("from_id", "customers"), ref("to_id", "customers")),
        _t("shelves", ref("aisle_id", "aisles")),
        _t("aisles", ref("shelf_id", "shelves")),  # a cycle that never reaches a customer
        _t("notes", ref("item_id", "items"), ref("order_id", "orders")),
    ])
    assert validity.customer_table(schema).name == "customers"
    p = validity.owner_paths(schema, "customers")
    assert p["items"] == [[("items", "order_id", "orders"), ("orders", "customer_id", "customers")]]
    assert p["notes"] == [[("notes", "order_id", "orders"), ("orders", "customer_id", "customers")]]  # shortest
    assert p["transfers"] == [[("transfers", "from_id", "customers")], [("transfers", "to_id", "customers")]]
    assert "shelves" not in p and "aisles" not in p

    class DB:
        rows = {"transfers": {"T1": {"from_id": "C1", "to_id": "C2"}, "T2": {"from_id": "C1", "to_id": None}},
                "customers": {"C1": {}, "C2": {}}}

        def get(self, table, key):
            return self.rows.get(table, {}).get(key)

    assert validity.row_owners(DB(), p, "transfers", "T1") == {"C1", "C2"}
    assert validity.row_owners(DB(), p, "transfers", "T2") == {"C1"}
    assert validity.owner_paths(schema, None) == {}


# ----------------------------------------------------------------------------------------- asked for

def test_asked_for_reads_the_sentences_after_tell_me():
    msg = ("Hi, I'm Ann (email ann@x.com). I would like to refund my pass whose kind is day. "
           "If that is not possible, tell me exactly what is blocking it. Please tell me the balance, rental id.")
    assert validity.asked_for("riders.balance", msg)
    assert validity.asked_for("rentals.rental_id", msg)
    assert not validity.asked_for("passes.kind", msg)  # said before "tell me", not asked for
    assert not validity.asked_for("bikes.status", msg)  # "what is blocking it" names no value
    assert not validity.asked_for("riders.balance", "I would like to check my balance.")


def test_staff_ops_need_every_operation_marked():
    cust = Table(name="riders", singular="rider", primary_key="rider_id",
                 columns=[Column(name="rider_id", type="id", prefix="RDR")])
    assert validity.staff_only_ops({"operations": {"a": {"kind": "write"}}}, cust) is None
    assert validity.staff_only_ops({"operations": {"a": {"actor": "staff"}, "b": {}}}, cust) is None
    marked = {"operations": {"a": {"actor": "staff"}, "b": {"actor": "rider"}, "c": {"who": ["staff", "customer"]}}}
    assert validity.staff_only_ops(marked, cust) == {"a"}
