"""The workspace store: SQLAlchemy over SQLite (WAL) by default, any SQLAlchemy URL accepted.

A workspace holds domains (schema, blueprint, provenance), their seed rows, tools (spec,
source, verdict), procedural test results, graph edges, and tasks with their reviews.
Every write of a domain or a batch of tasks is one transaction: an interrupted synthesis
leaves the previous version in place, never half a domain.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.data.models import (
    Domain,
    DomainSchema,
    DomainStats,
    GraphEdge,
    Implementation,
    Provenance,
    TestResult,
    ToolRecord,
    ToolSpec,
)

DEFAULT_DIR = "scaleenv-workspace"
md = sa.MetaData()

domains_t = sa.Table(
    "domains", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("schema_json", sa.Text, nullable=False),
    sa.Column("provenance_json", sa.Text, nullable=False),
    sa.Column("stats_json", sa.Text, nullable=False),
    sa.Column("blueprint_text", sa.Text, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
)
rows_t = sa.Table(
    "seed_rows", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("table_name", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("data_json", sa.Text, nullable=False),
)
tools_t = sa.Table(
    "tools", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("backend", sa.String(100), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.UniqueConstraint("domain_id", "name"),
)
results_t = sa.Table(
    "test_results", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tool_id", sa.Integer, sa.ForeignKey("tools.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("result_json", sa.Text, nullable=False),
)
edges_t = sa.Table(
    "graph_edges", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("target", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("edge_json", sa.Text, nullable=False),
)
tasks_t = sa.Table(
    "tasks", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain_id", sa.Integer, sa.ForeignKey("domains.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("task_id", sa.String(100), nullable=False, unique=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("review_status", sa.String(20), nullable=False),
    sa.Column("review_note", sa.Text, nullable=False),
    sa.Column("task_json", sa.Text, nullable=False),
)


class WorkspaceError(RuntimeError):
    pass


def workspace_url(location: str | os.PathLike | None = None, create: bool = True) -> str:
    """A SQLAlchemy URL for a workspace given as a URL, a directory, or nothing (env/default).

    With ``create=False`` a local workspace that does not exist yet is an error rather than
    a new empty one (so a mistyped path is reported, not silently created)."""
    loc = str(location) if location else os.environ.get("SCALEENV_WORKSPACE") or DEFAULT_DIR
    if loc.startswith("sqlite:///") and not create and loc != "sqlite:///:memory:":
        if not Path(loc[len("sqlite:///"):]).exists():
            raise WorkspaceError(f"no workspace at {loc}")
    if "://" in loc:
        return loc
    path = Path(loc)
    db = path if path.suffix in (".db", ".sqlite", ".sqlite3") else path / "workspace.db"
    if not create and not db.exists():
        raise WorkspaceError(f"no workspace at {loc} (create one with: scaleenv synth --all --workspace {loc})")
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db.resolve()}"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class Workspace:
    def __init__(self, location: str | os.PathLike | None = None, create: bool = True):
        self.url = workspace_url(location, create)
        try:
            self.engine = sa.create_engine(self.url)
        except Exception as e:  # bad URL, missing driver
            raise WorkspaceError(f"cannot open workspace {self.url!r}: {str(e).splitlines()[0]}") from None
        if self.engine.dialect.name == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.close()
        try:
            md.create_all(self.engine)
        except sa.exc.SQLAlchemyError as e:
            raise WorkspaceError(f"cannot open workspace {self.url!r}: {e.__class__.__name__}: "
                                 f"{str(e).splitlines()[0]}") from None

    # ------------------------------------------------------------------ domains

    def save_domain(self, d: Domain) -> None:
        """Store a domain, replacing one of the same name (and its tasks) in one transaction."""
        stats = d.stats()
        with self.engine.begin() as c:
            c.execute(sa.delete(domains_t).where(domains_t.c.name == d.name))
            did = c.execute(sa.insert(domains_t).values(
                name=d.name, title=d.domain.title, created_at=_now(), schema_json=d.domain.model_dump_json(),
                provenance_json=d.provenance.model_dump_json(), stats_json=stats.model_dump_json(),
                blueprint_text=d.blueprint_text, seconds=d.seconds)).inserted_primary_key[0]
            rows = [{"domain_id": did, "table_name": t, "position": i, "data_json": json.dumps(r)}
                    for t, trows in d.rows.items() for i, r in enumerate(trows)]
            if rows:
                c.execute(sa.insert(rows_t), rows)
            for pos, tool in enumerate(d.tools):
                tid = c.execute(sa.insert(tools_t).values(
                    domain_id=did, position=pos, name=tool.spec.name, kind=tool.spec.kind, status=tool.status,
                    reason=tool.reason, spec_json=tool.spec.model_dump_json(), source=tool.implementation.source,
                    backend=tool.implementation.backend, attempts=tool.implementation.attempts,
                )).inserted_primary_key[0]
                res = [{"tool_id": tid, "position": i, "name": r.case.name, "kind": r.case.kind, "passed": r.passed,
                        "reason": r.reason, "result_json": r.model_dump_json()} for i, r in enumerate(tool.results)]
                if res:
                    c.execute(sa.insert(results_t), res)
            edges = [{"domain_id": did, "source": e.source, "target": e.target, "kind": e.kind,
                      "edge_json": e.model_dump_json()} for e in d.edges]
            if edges:
                c.execute(sa.insert(edges_t), edges)

    def _domain_id(self, c: sa.Connection, name: str) -> int:
        did = c.execute(sa.select(domains_t.c.id).where(domains_t.c.name == name)).scalar()
        if did is None:
            known = ", ".join(self.domain_names()) or "none"
            raise WorkspaceError(f"no domain {name!r} in workspace {self.url} (domains: {known})")
        return did

    def domain_names(self) -> list[str]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(domains_t.c.name).order_by(domains_t.c.name)).scalars())

    def list_domains(self) -> list[DomainStats]:
        with self.engine.connect() as c:
            try:
                return [DomainStats.model_validate_json(s)
                        for s in c.execute(sa.select(domains_t.c.stats_json).order_by(domains_t.c.name)).scalars()]
            except ValueError as e:
                raise WorkspaceError(f"a domain summary in {self.url} is damaged: {str(e).splitlines()[0]}") from None

    def task_counts(self) -> dict[str, dict[str, int]]:
        """Per domain: how many tasks, and how many pending / approved / rejected."""
        q = (sa.select(domains_t.c.name, tasks_t.c.review_status, sa.func.count())
             .join(tasks_t, tasks_t.c.domain_id == domains_t.c.id)
             .group_by(domains_t.c.name, tasks_t.c.review_status))
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as c:
            for name, status, n in c.execute(q):
                d = out.setdefault(name, {"tasks": 0, "pending": 0, "approved": 0, "rejected": 0})
                d[status] = n
                d["tasks"] += n
        return out

    def load_domain(self, name: str) -> Domain:
        try:
            return self._load_domain(name)
        except ValueError as e:  # pydantic.ValidationError, json errors: a damaged record
            raise WorkspaceError(f"domain {name!r} in {self.url} is damaged and cannot be read: "
                                 f"{str(e).splitlines()[0]}") from None

    def _load_domain(self, name: str) -> Domain:
        with self.engine.connect() as c:
            did = self._domain_id(c, name)
            d = c.execute(sa.select(domains_t).where(domains_t.c.id == did)).one()
            rows: dict[str, list] = {}
            schema = DomainSchema.model_validate_json(d.schema_json)
            for t in schema.tables:
                rows[t.name] = []
            for tname, data in c.execute(sa.select(rows_t.c.table_name, rows_t.c.data_json)
                                         .where(rows_t.c.domain_id == did).order_by(rows_t.c.id)):
                rows.setdefault(tname, []).append(json.loads(data))
            tools = []
            results: dict[int, list] = {}
            for tool_id, rj in c.execute(
                    sa.select(results_t.c.tool_id, results_t.c.result_json)
                    .join(tools_t, tools_t.c.id == results_t.c.tool_id)
                    .where(tools_t.c.domain_id == did).order_by(results_t.c.tool_id, results_t.c.position)):
                results.setdefault(tool_id, []).append(TestResult.model_validate_json(rj))
            for t in c.execute(sa.select(tools_t).where(tools_t.c.domain_id == did).order_by(tools_t.c.position)):
                spec = ToolSpec.model_validate_json(t.spec_json)
                tools.append(ToolRecord(
                    spec=spec, implementation=Implementation(tool=t.name, source=t.source, backend=t.backend,
                                                             attempts=t.attempts),
                    results=results.get(t.id, []), status=t.status, reason=t.reason))
            edges = [GraphEdge.model_validate_json(e) for e in c.execute(
                sa.select(edges_t.c.edge_json).where(edges_t.c.domain_id == did).order_by(edges_t.c.id)).scalars()]
            return Domain(domain=schema, rows=rows, tools=tools, edges=edges,
                          provenance=Provenance.model_validate_json(d.provenance_json),
                          blueprint_text=d.blueprint_text, seconds=d.seconds)

    def delete_domain(self, name: str) -> None:
        with self.engine.begin() as c:
            did = self._domain_id(c, name)
            c.execute(sa.delete(domains_t).where(domains_t.c.id == did))

    # ------------------------------------------------------------------ tasks

    def replace_tasks(self, domain: str, tasks: Iterable[Any]) -> int:
        """Store a domain's generated tasks in one transaction, replacing earlier ones."""
        with self.engine.begin() as c:
            did = self._domain_id(c, domain)
            c.execute(sa.delete(tasks_t).where(tasks_t.c.domain_id == did))
            vals = [{"domain_id": did, "task_id": t.id, "position": i, "review_status": t.review.status,
                     "review_note": t.review.note, "task_json": t.model_dump_json()} for i, t in enumerate(tasks)]
            if vals:
                c.execute(sa.insert(tasks_t), vals)
            return len(vals)

    def load_tasks(self, domain: str) -> list[Any]:
        try:
            return self._load_tasks(domain)
        except ValueError as e:
            raise WorkspaceError(f"the tasks of {domain!r} in {self.url} are damaged and cannot be read: "
                                 f"{str(e).splitlines()[0]}") from None

    def _load_tasks(self, domain: str) -> list[Any]:
        from core.data.taskmodel import Task

        with self.engine.connect() as c:
            did = self._domain_id(c, domain)
            out = []
            for tj, status, note in c.execute(sa.select(tasks_t.c.task_json, tasks_t.c.review_status,
                                                        tasks_t.c.review_note)
                                              .where(tasks_t.c.domain_id == did).order_by(tasks_t.c.position)):
                t = Task.model_validate_json(tj)
                t.review.status, t.review.note = status, note
                out.append(t)
            return out

    def set_review(self, task_id: str, status: str, note: str = "") -> None:
        if status not in ("pending", "approved", "rejected"):
            raise WorkspaceError(f"review status must be pending, approved or rejected, not {status!r}")
        with self.engine.begin() as c:
            n = c.execute(sa.update(tasks_t).where(tasks_t.c.task_id == task_id)
                          .values(review_status=status, review_note=note)).rowcount
            if not n:
                raise WorkspaceError(f"no task {task_id!r} in workspace {self.url}")
