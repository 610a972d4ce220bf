"""The Tool Dependency Graph: which tool's output or state change enables which other tool.

* **data** edge A -> B: a field A returns carries the column a parameter of B takes
  (labelled ``{field: parameter}``), e.g. ``find_rider_by_email.rider_id -> start_rental.rider_id``.
* **state** edge A -> B: an effect of A can make a requirement of B true, e.g. ``end_rental``
  sets ``rentals.status = 'completed'``, which can make ``count(rentals, status='active') == 0``
  of ``start_rental`` hold.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from core.data.models import DomainSchema, GraphEdge
from core.spec import expr as X
from core.spec.blueprint import Operation


def _carries(schema: DomainSchema, produced: str | None, wanted: str | None) -> bool:
    """Does a value of column ``produced`` fit a parameter carrying column ``wanted``?"""
    if not produced or not wanted:
        return False
    if produced == wanted:
        return True
    pt, pc = produced.split(".")
    wt, wc = wanted.split(".")
    pcol = schema.table(pt).column(pc)
    wcol = schema.table(wt).column(wc)
    target = lambda t, c: (c.table, schema.table(c.table).primary_key) if c.type == "ref" else (t, c.name)  # noqa: E731
    return target(pt, pcol) == target(wt, wcol) and (pcol.type in ("id", "ref") and wcol.type in ("id", "ref"))


def data_edges(ops: list[Operation], schema: DomainSchema) -> list[GraphEdge]:
    out = []
    for a in ops:
        for b in ops:
            if a is b:
                continue
            label: dict[str, str] = {}
            for f, carried in a.spec.returns.fields.items():
                for p in b.spec.params:
                    if p.name not in label.values() and _carries(schema, carried, p.column):
                        label[f] = p.name
                        break
            if label:
                out.append(GraphEdge(source=a.name, target=b.name, kind="data", label=label))
    return out


def _writes(op: Operation) -> list[tuple[str, str, str, Any]]:
    """(table, column, how, literal-or-None) written by the operation's effects."""
    out = []
    for eff in op.effects:
        if isinstance(eff, X.Insert):
            out.append((eff.table, "*", "insert", None))
            for c, v in eff.values:
                out.append((eff.table, c, "=", v.value if isinstance(v, X.Lit) else _ANY))
        elif isinstance(eff, X.Update):
            for c, how, v in eff.sets:
                out.append((eff.table, c, how, v.value if isinstance(v, X.Lit) else _ANY))
        elif isinstance(eff, X.Delete):
            out.append((eff.table, "*", "delete", None))
    return out


class _Any:
    def __repr__(self) -> str:
        return "<value>"


_ANY = _Any()


def _enables(write: tuple, cond: Any) -> str | None:
    table, col, how, val = write
    for node in X.walk(cond):
        if isinstance(node, X.Compare) and isinstance(node.left, X.Field) and node.left.row.table == table \
                and node.left.column == col:
            lit = node.right.value if isinstance(node.right, X.Lit) else _ANY
            if how == "=" and (val is _ANY or lit is _ANY or (node.op == "==" and val == lit)
                               or (node.op == "!=" and val != lit)):
                return f"sets {table}.{col}"
            if how == "+=" and node.op in (">", ">=", "!="):
                return f"raises {table}.{col}"
            if how == "-=" and node.op in ("<", "<=", "!="):
                return f"lowers {table}.{col}"
        if isinstance(node, X.InList) and isinstance(node.item, X.Field) and node.item.row.table == table \
                and node.item.column == col and how == "=":
            lits = [o.value for o in node.options if isinstance(o, X.Lit)]
            if val is _ANY or (val in lits) != node.negated:
                return f"sets {table}.{col}"
        if isinstance(node, X.Agg) and node.table == table:
            if how == "insert":
                return f"adds a {table} row"
            if how == "delete":
                return f"removes a {table} row"
            if how == "=" and any(c == col for c, _ in node.filters):
                return f"changes which {table} rows match"
    return None


def state_edges(ops: list[Operation]) -> list[GraphEdge]:
    out = []
    for a in ops:
        writes = _writes(a)
        if not writes:
            continue
        for b in ops:
            if a is b:
                continue
            for e, req in b.requires:
                why = next((w for w in (_enables(wr, e) for wr in writes) if w), None)
                if why:
                    out.append(GraphEdge(source=a.name, target=b.name, kind="state",
                                         reason=f"{a.name} {why}, which can satisfy: {req.check}"))
                    break
    return out


def build_edges(ops: list[Operation], schema: DomainSchema) -> list[GraphEdge]:
    return data_edges(ops, schema) + state_edges(ops)


def to_networkx(tools: list[str], edges: list[GraphEdge]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(sorted(tools))
    for e in edges:
        if g.has_edge(e.source, e.target):
            g[e.source][e.target]["kinds"].add(e.kind)
            g[e.source][e.target]["edges"].append(e)
        else:
            g.add_edge(e.source, e.target, kinds={e.kind}, edges=[e])
    return g


def graph_stats(tools: list[str], edges: list[GraphEdge]) -> dict[str, Any]:
    g = to_networkx(tools, edges)
    return {"nodes": g.number_of_nodes(), "edges": g.number_of_edges(), "density": round(nx.density(g), 4),
            "data_edges": sum(e.kind == "data" for e in edges), "state_edges": sum(e.kind == "state" for e in edges)}
