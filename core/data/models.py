"""The vocabulary: pydantic models for everything that crosses a stage boundary.

Every model here round-trips through JSON (``model_dump_json`` / ``model_validate_json``);
they are the on-disk formats of the workspace and of exported bundles too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ColumnType = Literal[
    "id", "ref", "enum", "int", "money", "float", "bool", "date", "datetime",
    "name", "first_name", "last_name", "email", "phone", "text", "word", "code",
    "company", "address", "city", "string",
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Column(Model):
    """A typed column of a domain table."""

    name: str
    type: ColumnType
    prefix: str | None = None  # id: "RDR" gives RDR-0001
    table: str | None = None  # ref: the referenced table (its primary key)
    values: list[str] = Field(default_factory=list)  # enum
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    unique: bool = False
    default: Any = None
    pattern: str | None = None  # code: Faker bothify pattern, e.g. "??-####"
    faker: str | None = None  # string/text: a Faker provider method name
    description: str = ""
    label: str = ""  # the noun for the column in the user's words ("due date" for due_on); "" = its name

    @property
    def noun(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def sql_kind(self) -> Literal["TEXT", "INTEGER", "REAL"]:
        if self.type in ("int", "bool"):
            return "INTEGER"
        if self.type in ("money", "float"):
            return "REAL"
        return "TEXT"


class Requirement(Model):
    check: str  # expression text, as written in the blueprint
    message: str = ""  # what the agent is told when it fails


class Table(Model):
    name: str
    singular: str
    primary_key: str
    columns: list[Column]
    rows: int = 30  # seed rows
    description: str = ""
    invariants: list[Requirement] = Field(default_factory=list)  # checks every row keeps (column names as names)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)


class ParamSpec(Model):
    """One parameter of a tool: typed by a column it carries, or by a primitive type."""

    name: str
    type: Literal["string", "integer", "number", "boolean"]
    column: str | None = None  # "table.column" the parameter carries
    enum: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    format: Literal["date", "date-time"] | None = None
    optional: bool = False
    description: str = ""


class ReturnShape(Model):
    """What a tool returns, for the agent and for the dependency graph."""

    kind: Literal["row", "rows", "object"]
    table: str | None = None  # row/rows: rows of this table
    fields: dict[str, str | None] = Field(default_factory=dict)  # field -> "table.column" it carries


class ToolSpec(Model):
    """A tool's contract: name, description, JSON-schema parameters, returns, read/write kind.

    ``requires``/``effects``/``returns`` keep the declarative specification the tool was
    generated from and tested against.
    """

    name: str
    description: str
    kind: Literal["read", "write"]
    params: list[ParamSpec]
    parameters: dict[str, Any]  # JSON schema of the arguments
    returns: ReturnShape
    requires: list[Requirement] = Field(default_factory=list)
    effects: list[str] = Field(default_factory=list)
    returns_expr: str = ""
    intent: str = ""
    derived: bool = False  # a standard read tool derived from the tables
    actor: Literal["customer", "staff", "either"] = "either"  # who may ask for it
    report: list[str] = Field(default_factory=list)  # return fields worth telling the user


class TestCase(Model):
    __test__ = False  # not a pytest class

    name: str
    kind: Literal["happy", "boundary", "precondition", "not_found", "bad_argument", "determinism"]
    args: dict[str, Any]
    expect: Literal["ok", "not_found", "precondition", "invalid_argument"]
    detail: str = ""


class TestResult(Model):
    __test__ = False

    case: TestCase
    passed: bool
    reason: str = ""
    seconds: float = 0.0


class Implementation(Model):
    tool: str
    source: str
    backend: str = "procedural"
    attempts: int = 1


class ToolRecord(Model):
    """A tool as stored: spec, implementation, test results, verdict."""

    spec: ToolSpec
    implementation: Implementation
    results: list[TestResult] = Field(default_factory=list)
    status: Literal["passed", "rejected"] = "passed"
    reason: str = ""

    @property
    def tests(self) -> int:
        return len(self.results)

    @property
    def tests_passed(self) -> int:
        return sum(r.passed for r in self.results)


class GraphEdge(Model):
    source: str
    target: str
    kind: Literal["data", "state"]
    label: dict[str, str] = Field(default_factory=dict)  # data: output field -> parameter
    reason: str = ""  # state: which effect enables which requirement


class Provenance(Model):
    backend: str = "procedural"
    seed: int = 0
    model: str | None = None
    blueprint: str | None = None  # path or name of the blueprint
    blueprint_sha256: str | None = None
    parents: list[str] = Field(default_factory=list)
    scaleenv_version: str = "0.1.0"


class DomainSchema(Model):
    name: str
    title: str
    description: str = ""
    policy: str = ""
    tables: list[Table]
    clock: str = "2026-03-02T09:00:00"  # the environment's fixed clock (ISO)
    staff: str = ""  # the role of a member of staff who asks for staff operations, e.g. "depot technician"

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"no table {name!r}")

    def has_table(self, name: str) -> bool:
        return any(t.name == name for t in self.tables)


class DomainStats(Model):
    name: str
    tables: int
    rows: int
    tools: int
    tools_passed: int
    tests: int
    tests_passed: int
    edges: int
    density: float
    seconds: float


class Domain(Model):
    """A synthesized domain: schema, seed rows, tools, graph, provenance."""

    domain: DomainSchema
    rows: dict[str, list[dict[str, Any]]]
    tools: list[ToolRecord]
    edges: list[GraphEdge]
    provenance: Provenance
    blueprint_text: str = ""
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.domain.name

    def stats(self) -> DomainStats:
        n = len([t for t in self.tools if t.status == "passed"])
        possible = n * (n - 1)
        return DomainStats(
            name=self.name,
            tables=len(self.domain.tables),
            rows=sum(len(r) for r in self.rows.values()),
            tools=len(self.tools),
            tools_passed=n,
            tests=sum(t.tests for t in self.tools),
            tests_passed=sum(t.tests_passed for t in self.tools),
            edges=len({(e.source, e.target) for e in self.edges}),
            density=round(len({(e.source, e.target) for e in self.edges}) / possible, 4) if possible else 0.0,
            seconds=round(self.seconds, 3),
        )
