"""bench/validity.py: a tiny run end to end, and its hand-written parts (AUC, "asked for"); ownership
comes from core/tasks/ownership.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.data.models import Column, Table

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
    # measured once the blueprint says who may ask for every operation (actor); null, not 0, before
    ops = yaml.safe_load((ROOT / "sample_domains" / "bike_rental.yaml").read_text())["operations"]
    if all("actor" in op for op in ops.values()):
        assert d["staff_ops_as_customer_goals"] == 0  # the generator gives customers no staff operation
    else:
        assert d["staff_ops_as_customer_goals"] is None
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

def test_ownership_is_the_one_task_generation_uses(bike_domain):
    """The bench derives ownership with core/tasks/ownership.py (tested in test_ownership.py), not a copy."""
    from core.runtime.env import DomainRuntime
    from core.tasks import ownership

    assert validity.customer_table is ownership.customer_table
    assert validity.owner_paths is ownership.owner_paths and validity.row_owners is ownership.row_owners
    runtime = DomainRuntime(bike_domain)
    assert validity.key_params(runtime, "end_rental") == [("rental_id", "rentals"), ("station_id", "stations")]
    assert validity.key_params(runtime, "no_such_tool") == []


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
