"""core/tasks/ownership.py (who a row belongs to) and the ownership rule of task generation (docs/tasks.md,
"Ownership"): the persona is the one customer whose rows the goals act on; two customers drop."""

from __future__ import annotations

import pytest

from core.data.db import DomainDB
from core.data.models import Column, DomainSchema, Table
from core.spec.blueprint import parse_blueprint
from core.synthesis.synth import SynthOptions, synthesize
from core.tasks import ownership
from core.tasks.generator import Drop, Goal, TaskGenerator

# ----------------------------------------------------------------------------------------- paths


def test_bike_rental_ownership_paths(bike_bp):
    schema = bike_bp.schema
    cust = ownership.customer_table(schema)
    assert cust.name == "riders"
    paths = ownership.owner_paths(schema, cust.name)
    assert paths["riders"] == [[]]
    assert paths["rentals"] == [[("rentals", "rider_id", "riders")]]
    assert paths["payments"] == [[("payments", "rider_id", "riders")]]
    assert paths["passes"] == [[("passes", "rider_id", "riders")]]
    assert paths["repair_tickets"] == [[("repair_tickets", "reported_by", "riders")]]
    assert "bikes" not in paths and "stations" not in paths  # unowned
    own = ownership.Ownership(schema)
    assert own.customer is cust and own.paths == paths
    assert own.owned("rentals") and not own.owned("bikes")


def test_bike_rental_row_owners(bike_bp, seeded_db):
    schema = bike_bp.schema
    paths = ownership.owner_paths(schema, "riders")
    db = seeded_db(schema)
    for table in ("rentals", "payments", "passes"):
        row = db.select(table)[0]
        pk = schema.table(table).primary_key
        assert ownership.row_owners(db, paths, table, row[pk]) == {row["rider_id"]}
        assert ownership.owner_of(db, table, row[pk]) == {row["rider_id"]}  # the same, paths from db.schema
    rider = db.select("riders")[0]["rider_id"]
    assert ownership.owner_of(db, "riders", rider) == {rider}
    assert ownership.owner_of(db, "bikes", db.select("bikes")[0]["bike_id"]) == set()
    assert ownership.owner_of(db, "stations", db.select("stations")[0]["station_id"]) == set()
    assert ownership.owner_of(db, "rentals", "RNT-9999") == set()  # no such row
    # ownership follows the state: give a rental to another rider
    rental = db.select("rentals")[0]
    other = next(r["rider_id"] for r in db.select("riders") if r["rider_id"] != rental["rider_id"])
    db.update("rentals", rental["rental_id"], {"rider_id": other})
    assert ownership.owner_of(db, "rentals", rental["rental_id"]) == {other}


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
    assert ownership.customer_table(schema).name == "customers"
    p = ownership.owner_paths(schema, "customers")
    assert p["items"] == [[("items", "order_id", "orders"), ("orders", "customer_id", "customers")]]
    assert p["notes"] == [[("notes", "order_id", "orders"), ("orders", "customer_id", "customers")]]  # shortest
    assert p["transfers"] == [[("transfers", "from_id", "customers")], [("transfers", "to_id", "customers")]]
    assert "shelves" not in p and "aisles" not in p

    class DB:
        rows = {"transfers": {"T1": {"from_id": "C1", "to_id": "C2"}, "T2": {"from_id": "C1", "to_id": None}},
                "items": {"I1": {"order_id": "O1"}, "I2": {"order_id": "O9"}},
                "orders": {"O1": {"customer_id": "C2"}},
                "customers": {"C1": {}, "C2": {}}}

        def get(self, table, key):
            return self.rows.get(table, {}).get(key)

    assert ownership.row_owners(DB(), p, "transfers", "T1") == {"C1", "C2"}
    assert ownership.row_owners(DB(), p, "transfers", "T2") == {"C1"}  # a null ends the path
    assert ownership.row_owners(DB(), p, "items", "I1") == {"C2"}  # two hops
    assert ownership.row_owners(DB(), p, "items", "I2") == set()  # the order does not exist
    assert ownership.owner_paths(schema, None) == {}


def test_the_customer_table_needs_a_unique_email_and_a_name():
    no_unique = DomainSchema(name="x", title="x", tables=[
        _t("people", Column(name="name", type="name"), Column(name="email", type="email")),
        _t("clients", Column(name="email", type="email", unique=True), Column(name="name", type="name"))])
    assert ownership.customer_table(no_unique).name == "clients"
    nameless = DomainSchema(name="x", title="x", tables=[_t("people", Column(name="email", type="email",
                                                                                     unique=True))])
    assert ownership.customer_table(nameless) is None
    assert ownership.Ownership(nameless).paths == {}


def test_key_params_are_id_and_ref_columns(bike_domain):
    schema = bike_domain.domain
    specs = {t.spec.name: t.spec for t in bike_domain.tools}
    assert ownership.key_params(schema, specs["end_rental"]) == [("rental_id", "rentals"), ("station_id", "stations")]
    top_up = dict(ownership.key_params(schema, specs["top_up_balance"]))
    assert top_up == {"rider_id": "riders"}  # the amount is no row


# ----------------------------------------------------------------------------------------- the rule

SHOP = """
domain: shop
clock: 2026-03-02T09:00:00
policy: Identify the customer by email before acting on their orders.
tables:
  customers:
    rows: 6
    columns:
      customer_id: id CUS
      name: name
      email: email unique
  products:
    rows: 4
    columns:
      product_id: id PRD
      stock: int 0..20
  orders:
    rows: 8
    columns:
      order_id: id ORD
      customer_id: ref customers
      status: enum open|closed
  parcels:
    rows: 8
    columns:
      parcel_id: id PCL
      order_id: ref orders
      weight: int 1..30
      status: enum packed|shipped
operations:
  ship_parcel:
    intent: ship parcel {parcel_id}
    params:
      parcel_id: parcels.parcel_id
    requires:
      - check: parcels[parcel_id].status == 'packed'
        message: the parcel is not packed
    effects:
      - update parcels[parcel_id] set status = 'shipped'
    returns: parcels[parcel_id]
    report: [weight]
  restock:
    intent: add {amount} to the stock of product {product_id}
    params:
      product_id: products.product_id
      amount: int 2..9
    effects:
      - update products[product_id] set stock += amount
    returns: products[product_id]
    report: [stock]
  merge_orders:
    intent: merge order {from_id} into order {into_id}
    params:
      from_id: orders.order_id
      into_id: orders.order_id
    requires:
      - check: orders[into_id].status == 'open'
        message: the order is closed
    effects:
      - update orders[from_id] set status = 'closed'
    returns: orders[into_id]
  register_customer:
    intent: register a customer named {name} with email {email}
    params:
      name: customers.name
      email: customers.email
    effects:
      - "insert customers {name: name, email: email}"
    returns: inserted
"""


@pytest.fixture(scope="module")
def shop():
    return synthesize(parse_blueprint(SHOP, "shop.yaml"), SynthOptions(seed=0))


def only(gen: TaskGenerator, name: str):
    """Make every attempt of ``gen`` a single-goal chain of operation ``name``."""
    gen._pick_goals = lambda rng, min_goals=1, actor="customer", refusal=False: [Goal(gen.ops[name], {}, {})]
    return gen


def test_the_shop_synthesizes_with_its_ownership(shop):
    assert {t.spec.name for t in shop.tools if t.status == "passed"} >= {"ship_parcel", "restock", "merge_orders",
                                                                          "find_customer_by_email"}
    paths = ownership.owner_paths(shop.domain, "customers")
    assert paths["parcels"] == [[("parcels", "order_id", "orders"), ("orders", "customer_id", "customers")]]
    assert "products" not in paths


def test_a_goal_on_a_customers_row_makes_that_customer_the_persona(shop):
    """ship_parcel names no customer: the parcel's order's customer becomes the persona (before: anonymous)."""
    gen = only(TaskGenerator(shop, seed=0, p_refusal=0.0, p_distractors=0.0), "ship_parcel")
    tasks, stats = gen.generate(5)
    assert len(tasks) == 5, stats.drop_reasons
    for t in tasks:
        db = gen.runtime.build_db(t.initial)
        parcel = db.get("parcels", t.chain[-1].args["parcel_id"])
        owner = db.get("customers", db.get("orders", parcel["order_id"])["customer_id"])
        assert t.scenario.persona == f"{owner['name']}, a customer with email {owner['email']}", t.id
        assert t.scenario.actor == "customer" and t.scenario.known["name"] == owner["name"], t.id
        assert t.scenario.known["email"] == owner["email"]
        db.close()


def test_a_goal_on_no_customers_row_stays_anonymous(shop):
    gen = only(TaskGenerator(shop, seed=0, p_refusal=0.0, p_distractors=0.0), "restock")
    tasks, _ = gen.generate(3)
    assert len(tasks) == 3
    assert {t.scenario.persona for t in tasks} == {"someone who does not give their name"}
    assert {t.scenario.actor for t in tasks} == {"none"}
    assert not any("email" in t.scenario.known or "name" in t.scenario.known for t in tasks)


def test_goals_on_two_customers_rows_are_dropped(shop):
    gen = TaskGenerator(shop, seed=0)
    db = gen._db()
    orders = db.select("orders")
    mine = orders[0]
    theirs = next(o for o in orders if o["customer_id"] != mine["customer_id"])
    same = next((o for o in orders[1:] if o["customer_id"] == mine["customer_id"]), None)
    db.update("orders", theirs["order_id"], {"status": "open"})
    merge = lambda a, b: [Goal(gen.ops["merge_orders"], {"from_id": a, "into_id": b}, {})]  # noqa: E731
    with pytest.raises(Drop, match="^a goal acts on another customer's record$"):
        gen._persona(db, merge(mine["order_id"], theirs["order_id"]))
    if same is None:  # give the customer a second order
        same = db.insert("orders", {"customer_id": mine["customer_id"], "status": "open"})
    db.update("orders", same["order_id"], {"status": "open"})
    persona = gen._persona(db, merge(mine["order_id"], same["order_id"]))
    assert persona == db.get("customers", mine["customer_id"])
    db.close()


def test_the_drop_is_counted_by_its_reason(shop):
    gen = only(TaskGenerator(shop, seed=0, p_refusal=0.0, p_distractors=0.0), "merge_orders")
    tasks, stats = gen.generate(4, max_attempts=60)
    # most random pairs of orders belong to two customers (6 customers, 8 orders)
    assert stats.drop_reasons["a goal acts on another customer's record"] >= 5
    for t in tasks:  # the ones kept merge two orders of one customer, who is the persona
        db = gen.runtime.build_db(t.initial)
        a, b = (db.get("orders", t.chain[-1].args[p]) for p in ("from_id", "into_id"))
        assert a["customer_id"] == b["customer_id"], t.id
        assert db.get("customers", a["customer_id"])["email"] in t.scenario.persona
        db.close()


def test_a_customer_the_chain_creates_is_owned_per_the_state_it_left(shop):
    """A new customer signing up is the persona, read from the state after the goal that creates them;
    a row of another customer beside them drops, and so does an existing row the arranger pointed at
    the id the new customer will get."""
    gen = TaskGenerator(shop, seed=0)
    db = gen._db()
    new_id = f"CUS-{len(db.select('customers')) + 1:04d}"
    register = Goal(gen.ops["register_customer"], {"name": "Ada Quill", "email": "ada.quill@example.com"}, {})
    persona = gen._persona(db, [register])
    assert persona == {"customer_id": new_id, "name": "Ada Quill", "email": "ada.quill@example.com"}
    assert db.get("customers", new_id) is None  # only the copy the chain ran on has them

    theirs = db.select("orders")[0]
    db.update("orders", theirs["order_id"], {"status": "open"})
    register = Goal(gen.ops["register_customer"], {"name": "Ada Quill", "email": "ada.quill@example.com"}, {})
    merge = Goal(gen.ops["merge_orders"], {"from_id": theirs["order_id"], "into_id": theirs["order_id"]}, {})
    with pytest.raises(Drop, match="^a goal acts on another customer's record$"):
        gen._persona(db, [register, merge])

    db.update("orders", theirs["order_id"], {"customer_id": new_id})  # a dangling reference, until the sign-up
    register = Goal(gen.ops["register_customer"], {"name": "Ada Quill", "email": "ada.quill@example.com"}, {})
    merge = Goal(gen.ops["merge_orders"], {"from_id": theirs["order_id"], "into_id": theirs["order_id"]}, {})
    with pytest.raises(Drop, match="^a record belongs to a customer the task creates later$"):
        gen._persona(db, [register, merge])
    db.close()


def test_owner_of_reads_any_domain_db(shop):
    db = DomainDB(shop.domain)
    db.load({t: [dict(r) for r in rows] for t, rows in shop.rows.items()})
    parcel = db.select("parcels")[0]
    order = db.get("orders", parcel["order_id"])
    assert ownership.owner_of(db, "parcels", parcel["parcel_id"]) == {order["customer_id"]}
    assert ownership.owner_of(db, "orders", order["order_id"]) == {order["customer_id"]}
    assert ownership.owner_of(db, "products", db.select("products")[0]["product_id"]) == set()
    db.close()


# ---------------------------------------------------------------------- the policy's actor rule


def test_a_customer_never_asks_for_a_staff_operation(bike_domain):
    """suspend_rider is staff's (sample_domains/bike_rental.yaml): asked by a customer the attempt is
    dropped with its reason; asked by staff it becomes a staff task."""
    assert next(o for o in TaskGenerator(bike_domain).ops.values() if o.name == "suspend_rider").spec.actor == "staff"
    gen = only(TaskGenerator(bike_domain, seed=0, p_refusal=0.0), "suspend_rider")
    gen.p_staff = 0.0  # every attempt a customer's
    tasks, stats = gen.generate(3, max_attempts=6)
    assert tasks == [] and stats.drop_reasons["a customer asks for a staff operation (suspend_rider)"] == 6
    gen = only(TaskGenerator(bike_domain, seed=0, p_refusal=0.0), "suspend_rider")
    gen.p_staff = 1.0
    tasks, _ = gen.generate(3)
    assert len(tasks) == 3 and {t.scenario.actor for t in tasks} == {"staff"}
    assert all(t.scenario.persona.endswith("(staff)") for t in tasks)
