"""Blueprints: a YAML file describing a domain, loaded into a schema and typed operations.

The format is documented in docs/blueprints.md. Every problem is reported as a
:class:`BlueprintError` naming the file, the line and the place (table, column, operation).
"""

from __future__ import annotations

import hashlib
import keyword
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from core.data.models import Column, DomainSchema, ParamSpec, Requirement, ReturnShape, Table, ToolSpec
from core.data.seed import _faker, table_order
from core.runtime.sandbox import FORBIDDEN_NAMES, SAFE_BUILTINS
from core.spec import expr as X


class BlueprintError(ValueError):
    """A blueprint that cannot be used, with where and what."""

    def __init__(self, file: str, where: str, message: str, line: int | None = None):
        self.file, self.where, self.message, self.line = file, where, message, line
        loc = f"{file}:{line}" if line else file
        super().__init__(f"{loc}: {where}: {message}" if where else f"{loc}: {message}")


@dataclass
class Operation:
    """A tool's specification in IR form: what the compiler and the interpreter read."""

    spec: ToolSpec
    params: dict[str, ParamSpec]
    requires: list[tuple[X.Expr, Requirement]]
    effects: list[X.Effect]
    returns: X.Returns

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Blueprint:
    schema: DomainSchema
    operations: list[Operation]
    text: str
    path: str
    invariants: dict[str, list[tuple[X.Expr, Requirement]]] = field(default_factory=dict)  # table -> checks

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def operation(self, name: str) -> Operation:
        for op in self.operations:
            if op.name == name:
                return op
        raise KeyError(name)


NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
COLUMN_TYPES = set(Column.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]
FLAGS = {"unique", "nullable", "optional"}
RESERVED_COLUMNS = {"table", "self", "column", "key", "values", "filters"}  # names of DomainDB's own arguments


# ------------------------------------------------------------------ YAML with line numbers


def _lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for k, v in node.value:
            key = k.value
            if key in seen:
                raise _Duplicate(key, (*path, key), k.start_mark.line + 1)
            seen.add(key)
            out[(*path, key)] = k.start_mark.line + 1
            _lines(v, (*path, key), out)
            out[(*path, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)
    return out


MAX_BYTES = 2_000_000  # a blueprint file larger than this is refused unread
MAX_DEPTH = 64  # deepest nesting of mappings / lists a blueprint may have


class _Refused(Exception):
    """YAML the blueprint loader will not build: an anchor or alias, or nesting too deep."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.message, self.line = message, line


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases (no "billion laughs", no recursive nodes) and nesting
    deeper than MAX_DEPTH, both checked on the next event before the composer builds (or expands) it,
    so neither the time nor the recursion depth of composing can grow past the limits."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(f"YAML anchors and aliases are not allowed in a blueprint (line {line})", line)
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"YAML nested deeper than {MAX_DEPTH} levels (line {line})", line)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _too_big(text: str) -> bool:
    return len(text) > MAX_BYTES or len(text.encode("utf-8", "replace")) > MAX_BYTES


def _yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """Compose ``text`` once with :class:`_SafeLoader` and construct the data from that node.
    Raises :class:`_Refused` or ``yaml.YAMLError``."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


class _Duplicate(Exception):
    def __init__(self, key: str, path: tuple, line: int):
        self.key, self.path, self.line = key, path, line


class _Ctx:
    def __init__(self, file: str, lines: dict[tuple, int]):
        self.file, self.lines = file, lines

    def error(self, path: tuple, message: str) -> BlueprintError:
        line = None
        for i in range(len(path), -1, -1):
            if path[:i] in self.lines:
                line = self.lines[path[:i]]
                break
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
        return BlueprintError(self.file, where, message, line)


# ------------------------------------------------------------------ columns


def _range(tok: str) -> tuple[float, float] | None:
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?)", tok)
    return (float(m.group(1)), float(m.group(2))) if m else None


def _column(name: str, raw: Any, ctx: _Ctx, path: tuple) -> Column:
    if isinstance(raw, str):
        toks = raw.split()
        if not toks:
            raise ctx.error(path, "empty column type")
        data: dict[str, Any] = {"type": toks[0]}
        for tok in toks[1:]:
            if tok in FLAGS:
                data["nullable" if tok == "optional" else tok] = True
            elif tok.startswith("default="):
                try:
                    data["default"] = _yaml(tok[8:])[1]
                except (yaml.YAMLError, _Refused):
                    raise ctx.error(path, f"cannot read the default value {tok[8:]!r}") from None
            elif tok.startswith("faker:"):
                data["faker"] = tok[6:]
            elif (r := _range(tok)) is not None:
                data["min"], data["max"] = r
            elif data["type"] == "id":
                data["prefix"] = tok
            elif data["type"] == "ref":
                data["table"] = tok
            elif data["type"] == "enum":
                data["values"] = [v for v in tok.split("|") if v]
            elif data["type"] == "code":
                data["pattern"] = tok
            else:
                raise ctx.error(path, f"cannot read {tok!r} in column type {raw!r}")
    elif isinstance(raw, dict):
        data = dict(raw)
    else:
        raise ctx.error(path, f"a column is a type string like 'enum active|closed' or a mapping, got {raw!r}")
    if data.get("type") not in COLUMN_TYPES:
        raise ctx.error(path, f"unknown column type {data.get('type')!r} (known: {', '.join(sorted(COLUMN_TYPES))})")
    try:
        col = Column(name=name, **data)
    except Exception as e:  # pydantic.ValidationError
        raise ctx.error(path, _pyd(e)) from None
    if col.type == "id" and not col.prefix:
        raise ctx.error(path, "an id column needs a prefix, e.g. 'id RDR'")
    if col.type == "ref" and not col.table:
        raise ctx.error(path, "a ref column names its table, e.g. 'ref riders'")
    if col.type == "code" and not col.pattern:
        raise ctx.error(path, "a code column needs a pattern, e.g. 'code RX-#### unique' "
                              "(quote the value when the pattern starts with '#': YAML reads '#' as a comment)")
    if col.type == "enum" and len(col.values) < 2:
        raise ctx.error(path, "an enum column lists at least two values, e.g. 'enum open|closed'")
    if col.type in ("int", "money", "float") and (col.min is None or col.max is None):
        raise ctx.error(path, f"a {col.type} column needs bounds, e.g. '{col.type} 0..100'")
    if col.type == "int" and any(b is not None and not float(b).is_integer() for b in (col.min, col.max)):
        raise ctx.error(path, f"an int column takes whole-number bounds, got {col.min:g}..{col.max:g}")
    if col.min is not None and col.max is not None and col.min > col.max:
        raise ctx.error(path, f"bounds {col.min}..{col.max} are reversed")
    if col.type in ("date", "datetime") and col.min is None:
        col.min, col.max = -365, 0
    return col


def _pyd(e: Exception) -> str:
    errs = getattr(e, "errors", None)
    if callable(errs):
        return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in errs())
    return str(e)


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith(("sses", "xes", "ches", "shes")):
        return name[:-2]
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def _tables(raw: Any, ctx: _Ctx) -> list[Table]:
    if not isinstance(raw, dict) or not raw:
        raise ctx.error(("tables",), "tables is a mapping of table name to its definition")
    tables = []
    for tname, tdef in raw.items():
        path = ("tables", tname)
        if not isinstance(tname, str) or not NAME_RE.match(tname):
            raise ctx.error(path, f"table name {tname!r} must be lower_snake_case")
        if not isinstance(tdef, dict) or not isinstance(tdef.get("columns"), dict):
            raise ctx.error(path, "a table has 'columns:' (a mapping of column name to type)")
        unknown = set(tdef) - {"columns", "rows", "singular", "description", "labels", "invariants"}
        if unknown:
            raise ctx.error(path, f"unknown key(s) {', '.join(sorted(unknown))}")
        cols = []
        for cname, craw in tdef["columns"].items():
            if not isinstance(cname, str) or not NAME_RE.match(cname):
                raise ctx.error((*path, "columns", cname), f"column name {cname!r} must be lower_snake_case")
            if cname in RESERVED_COLUMNS:
                raise ctx.error((*path, "columns", cname), f"{cname!r} is reserved; name the column differently")
            cols.append(_column(cname, craw, ctx, (*path, "columns", cname)))
        labels = tdef.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) and v.strip() for v in labels.values()):
            raise ctx.error((*path, "labels"), "labels maps a column to the noun users say for it, e.g. due_on: due date")
        for cname, noun in labels.items():
            col = next((c for c in cols if c.name == cname), None)
            if col is None:
                raise ctx.error((*path, "labels", cname), f"labels names {cname!r}, which is not a column of {tname}")
            col.label = noun.strip()
        ids = [c for c in cols if c.type == "id"]
        if len(ids) != 1:
            raise ctx.error((*path, "columns"), f"a table has exactly one id column (found {len(ids)})")
        rows = tdef.get("rows", 30)
        if not isinstance(rows, int) or isinstance(rows, bool) or not 1 <= rows <= 100_000:
            raise ctx.error((*path, "rows"), "rows is a whole number from 1 to 100000")
        singular = tdef.get("singular") or _singular(tname)
        if not isinstance(singular, str) or not NAME_RE.match(singular):
            raise ctx.error((*path, "singular"), f"singular {singular!r} must be lower_snake_case (it names tools)")
        tables.append(Table(name=tname, singular=singular,
                            primary_key=ids[0].name, columns=cols, rows=rows,
                            description=str(tdef.get("description", ""))))
    names = {t.name for t in tables}
    for t in tables:
        for c in t.columns:
            if c.type == "ref" and c.table not in names:
                raise ctx.error(("tables", t.name, "columns", c.name),
                                f"ref to unknown table {c.table!r} (tables: {', '.join(sorted(names))})")
    return tables


# ------------------------------------------------------------------ parameters


def _param_from_column(name: str, col: Column, carried: str | None, optional: bool) -> ParamSpec:
    p: dict[str, Any] = {"name": name, "column": carried, "optional": optional}
    if col.type in ("int", "bool"):
        p["type"] = "integer" if col.type == "int" else "boolean"
    elif col.type in ("money", "float"):
        p["type"] = "number"
    else:
        p["type"] = "string"
    if col.type == "enum":
        p["enum"] = list(col.values)
    if col.type in ("int", "money", "float"):
        p["minimum"], p["maximum"] = col.min, col.max
    if col.type == "date":
        p["format"] = "date"
    elif col.type == "datetime":
        p["format"] = "date-time"
    return ParamSpec(**p)


PRIMITIVES = {"int": "int", "integer": "int", "money": "money", "number": "float", "float": "float",
              "text": "text", "string": "string", "bool": "bool", "boolean": "bool", "date": "date",
              "enum": "enum", "email": "email", "name": "name", "phone": "phone"}


def _param(name: str, raw: Any, tables: dict[str, Table], ctx: _Ctx, path: tuple) -> ParamSpec:
    desc = ""
    if isinstance(raw, dict):
        desc = str(raw.get("description", ""))
        raw = raw.get("type")
    if not isinstance(raw, str) or not raw.strip():
        raise ctx.error(path, "a parameter is 'table.column' or a type such as 'int 1..10'")
    toks = raw.split()
    optional = "optional" in toks
    head = toks[0]
    if "." in head and not _range(head):
        tname, _, cname = head.partition(".")
        if tname not in tables:
            raise ctx.error(path, f"unknown table {tname!r} in {head!r}")
        t = tables[tname]
        if not t.has_column(cname):
            raise ctx.error(path, f"table {tname!r} has no column {cname!r}")
        p = _param_from_column(name, t.column(cname), head, optional)
    else:
        if head not in PRIMITIVES:
            raise ctx.error(path, f"unknown parameter type {head!r}: use table.column or one of "
                                  f"{', '.join(sorted(set(PRIMITIVES)))}")
        col = _column(name, " ".join(t for t in toks if t != "optional").replace(head, PRIMITIVES[head], 1),
                      ctx, path)
        p = _param_from_column(name, col, None, optional)
    p.description = desc or _describe_param(p)
    return p


def _describe_param(p: ParamSpec) -> str:
    if p.column:
        t, c = p.column.split(".")
        return f"the {c.replace('_', ' ')} of the {_singular(t).replace('_', ' ')}"
    return p.name.replace("_", " ")


def json_schema(params: list[ParamSpec]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for p in params:
        s: dict[str, Any] = {"type": p.type, "description": p.description}
        if p.enum:
            s["enum"] = list(p.enum)
        if p.minimum is not None:
            s["minimum"] = int(p.minimum) if p.type == "integer" else p.minimum
        if p.maximum is not None:
            s["maximum"] = int(p.maximum) if p.type == "integer" else p.maximum
        if p.format:
            s["format"] = p.format
        if p.type == "string" and not p.enum:
            s["maxLength"] = 500
        props[p.name] = s
    return {"type": "object", "properties": props, "required": [p.name for p in params if not p.optional],
            "additionalProperties": False}


# ------------------------------------------------------------------ return shapes


def _carried(e: X.Expr, params: dict[str, ParamSpec], schema: DomainSchema) -> str | None:
    if isinstance(e, X.Field):
        return f"{e.row.table}.{e.column}"
    if isinstance(e, X.InsertedField):
        return None
    if isinstance(e, X.Param):
        return params[e.name].column
    return None


def return_shape(ret: X.Returns, op_inserted: str | None, params: dict[str, ParamSpec],
                 schema: DomainSchema) -> ReturnShape:
    if isinstance(ret, X.RetInserted):
        table = op_inserted
    elif isinstance(ret, X.RetRow):
        table = ret.row.table
    elif isinstance(ret, X.RetOne | X.RetList):
        table = ret.table
    else:
        return ReturnShape(kind="object", fields={k: _carried(v, params, schema) for k, v in ret.fields})
    t = schema.table(table)
    return ReturnShape(kind="rows" if isinstance(ret, X.RetList) else "row", table=table,
                       fields={c.name: f"{table}.{c.name}" for c in t.columns})


# ------------------------------------------------------------------ operations


OP_KEYS = {"kind", "description", "params", "requires", "effects", "returns", "intent", "report", "actor"}
ACTORS = ("customer", "staff", "either")


def _operation(name: str, raw: Any, schema: DomainSchema, ctx: _Ctx) -> Operation:
    path = ("operations", name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.error(path, f"operation name {name!r} must be lower_snake_case")
    if not isinstance(raw, dict):
        raise ctx.error(path, "an operation is a mapping with kind, params, requires, effects, returns, intent")
    unknown = set(raw) - OP_KEYS
    if unknown:
        raise ctx.error(path, f"unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(OP_KEYS))})")
    kind = raw.get("kind", "write" if raw.get("effects") else "read")
    if kind not in ("read", "write"):
        raise ctx.error((*path, "kind"), "kind is read or write")
    tables = {t.name: t for t in schema.tables}
    params: dict[str, ParamSpec] = {}
    praw = raw.get("params") or {}
    if not isinstance(praw, dict):
        raise ctx.error((*path, "params"), "params is a mapping of name to 'table.column' or a type")
    for pname, pdef in praw.items():
        if not isinstance(pname, str) or not NAME_RE.match(pname):
            raise ctx.error((*path, "params", pname), f"parameter name {pname!r} must be lower_snake_case")
        if pname in ("today", "now", "inserted", "db", "ctx", "row", "rows") or keyword.iskeyword(pname):
            raise ctx.error((*path, "params", pname), f"{pname!r} is a reserved name")
        if pname in FORBIDDEN_NAMES or pname in SAFE_BUILTINS or pname in ("NotFound", "PreconditionFailed"):
            raise ctx.error((*path, "params", pname), f"{pname!r} cannot be a parameter name (tool code may not use it)")
        params[pname] = _param(pname, pdef, tables, ctx, (*path, "params", pname))
    scope = X.Scope(schema, params)

    for key in ("requires", "effects"):
        if raw.get(key) is not None and not isinstance(raw[key], list):
            raise ctx.error((*path, key), f"{key} is a list (one '- ' item per line)")
    requires = []
    for i, r in enumerate(raw.get("requires") or []):
        rpath = (*path, "requires", i)
        if isinstance(r, dict):
            text, msg = r.get("check"), str(r.get("message", ""))
        else:
            text, msg = r, ""
        if not isinstance(text, str):
            raise ctx.error(rpath, "a requirement is an expression string, or {check: ..., message: ...}")
        try:
            e = X.parse_expr(text, scope)
        except X.ExprError as err:
            raise ctx.error(rpath, str(err)) from None
        requires.append((e, Requirement(check=text.strip(), message=msg)))

    effects: list[X.Effect] = []
    inserted: str | None = None
    for i, text in enumerate(raw.get("effects") or []):
        try:
            eff = X.parse_effect(text, scope)
        except X.ExprError as err:
            raise ctx.error((*path, "effects", i), str(err)) from None
        for node in X.walk(eff):
            key = node.key if isinstance(node, X.Lookup | X.Update | X.Delete) else None
            if key is not None and any(isinstance(k, X.InsertedField) for k in X.walk(key)):
                raise ctx.error((*path, "effects", i),
                                "a row cannot be looked up by inserted.*: rows are looked up before any effect "
                                "runs; set the values in the insert itself")
        if isinstance(eff, X.Insert):
            t = tables[eff.table]
            given = {c for c, _ in eff.values}
            if t.primary_key in given:
                raise ctx.error((*path, "effects", i),
                                f"{t.primary_key} is generated by the environment; leave it out of the insert")
            missing = [c.name for c in t.columns if c.name not in given and c.name != t.primary_key
                       and not c.nullable and c.default is None]
            if missing:
                raise ctx.error((*path, "effects", i), f"insert into {t.name} leaves out {', '.join(missing)} "
                                                       "(give a value, or make the column nullable / give a default)")
            inserted = eff.table
            scope.inserted = inserted
        effects.append(eff)
    if kind == "write" and not effects:
        raise ctx.error(path, "a write operation has at least one effect")
    if kind == "read" and effects:
        raise ctx.error((*path, "kind"), "a read operation cannot have effects")
    if "returns" not in raw:
        raise ctx.error(path, "returns is missing")
    try:
        ret = X.parse_returns(raw["returns"], scope)
    except X.ExprError as err:
        raise ctx.error((*path, "returns"), str(err)) from None
    shape = return_shape(ret, inserted, params, schema)
    report = raw.get("report") or []
    if isinstance(report, str):
        report = [report]
    if not isinstance(report, list) or not all(isinstance(f, str) for f in report):
        raise ctx.error((*path, "report"), "report is a list of returned field names, e.g. [balance, rental_id]")
    for f in report:
        if f not in shape.fields:
            raise ctx.error((*path, "report"), f"report names {f!r}, which is not a returned field "
                                               f"({', '.join(shape.fields)})")
    if raw.get("intent") is not None and not isinstance(raw["intent"], str):
        raise ctx.error((*path, "intent"), "intent is a phrase, e.g. \"rent bike {bike_id}\"")
    if raw.get("description") is not None and not isinstance(raw["description"], str):
        raise ctx.error((*path, "description"), "description is text")
    intent = str(raw.get("intent") or name.replace("_", " "))
    for ref in re.findall(r"\{(\w+)\}", intent):
        if ref not in params:
            raise ctx.error((*path, "intent"), f"intent mentions {{{ref}}}, which is not a parameter")
    actor = raw.get("actor", "either")
    if actor not in ACTORS:
        raise ctx.error((*path, "actor"), f"actor is who may ask for the operation: {', '.join(ACTORS)} (got {actor!r})")
    plist = list(params.values())
    spec = ToolSpec(actor=actor,
        name=name, description=str(raw.get("description") or intent), kind=kind, params=plist,
        parameters=json_schema(plist), returns=shape,
        requires=[r for _, r in requires], effects=[str(t).strip() for t in raw.get("effects") or []],
        returns_expr=raw["returns"] if isinstance(raw["returns"], str) else X.render_returns(ret),
        intent=intent, report=list(report),
    )
    return Operation(spec, params, requires, effects, ret)


# ------------------------------------------------------------------ derived read tools


def derived_operations(schema: DomainSchema, taken: set[str]) -> list[Operation]:
    """Standard read tools: get by id, find by a unique column, list by a reference or a status."""
    ops: list[Operation] = []

    def add(name: str, desc: str, params: list[ParamSpec], ret: X.Returns, intent: str) -> None:
        if name in taken:
            return
        taken.add(name)
        pmap = {p.name: p for p in params}
        shape = return_shape(ret, None, pmap, schema)
        spec = ToolSpec(name=name, description=desc, kind="read", params=params, parameters=json_schema(params),
                        returns=shape, returns_expr=X.render_returns(ret),
                        intent=intent, derived=True)
        ops.append(Operation(spec, pmap, [], [], ret))

    for t in schema.tables:
        pk = t.column(t.primary_key)
        s = t.singular
        p = _param_from_column(pk.name, pk, f"{t.name}.{pk.name}", False)
        p.description = f"the id of the {s.replace('_', ' ')}"
        add(f"get_{s}", f"Get one {s.replace('_', ' ')} by its id.", [p],
            X.RetRow(X.Lookup(t.name, X.Param(pk.name))), f"look up {s.replace('_', ' ')} {{{pk.name}}}")
        for c in t.columns:
            if c.unique and c.type != "id":
                q = _param_from_column(c.name, c, f"{t.name}.{c.name}", False)
                q.description = f"the {c.name.replace('_', ' ')} of the {s.replace('_', ' ')}"
                add(f"find_{s}_by_{c.name}", f"Find the {s.replace('_', ' ')} with this {c.name.replace('_', ' ')}.",
                    [q], X.RetOne(t.name, ((c.name, X.Param(c.name)),)),
                    f"find {s.replace('_', ' ')} by {c.name.replace('_', ' ')} {{{c.name}}}")
        for c in t.columns:
            if c.type == "ref":
                target = schema.table(c.table)
                q = _param_from_column(c.name, c, f"{c.table}.{target.primary_key}", False)
                q.description = f"the id of the {target.singular.replace('_', ' ')}"
                by = c.name[:-3] if c.name.endswith("_id") else c.name
                add(f"list_{t.name}_by_{by}",
                    f"List the {t.name.replace('_', ' ')} of a {target.singular.replace('_', ' ')} ({c.name}).",
                    [q], X.RetList(t.name, ((c.name, X.Param(c.name)),)),
                    f"list {t.name.replace('_', ' ')} of {by.replace('_', ' ')} {{{c.name}}}")
            elif c.type == "enum" and c.name == "status":
                q = _param_from_column(c.name, c, None, False)
                q.description = f"the status of the {t.name.replace('_', ' ')}"
                add(f"list_{t.name}_by_status", f"List the {t.name.replace('_', ' ')} with this status.",
                    [q], X.RetList(t.name, ((c.name, X.Param(c.name)),)),
                    f"list {t.name.replace('_', ' ')} with status {{{c.name}}}")
    return ops


# ------------------------------------------------------------------ loading

TOP_KEYS = {"domain", "title", "description", "policy", "clock", "tables", "operations", "derive", "staff"}


def load_blueprint(path: str | Path) -> Blueprint:
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            raise BlueprintError(str(path), "", f"file is larger than {MAX_BYTES // 1_000_000} MB "
                                                f"({path.stat().st_size} bytes); a blueprint is far smaller")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BlueprintError(str(path), "", f"cannot read file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise BlueprintError(str(path), "", "file is not UTF-8 text") from None
    return parse_blueprint(text, str(path))


def parse_blueprint(text: str, file: str = "<blueprint>") -> Blueprint:
    if _too_big(text):
        raise BlueprintError(file, "", f"text is larger than {MAX_BYTES // 1_000_000} MB; a blueprint is far smaller")
    try:
        node, data = _yaml(text)
    except _Refused as e:
        raise BlueprintError(file, "", e.message, e.line) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise BlueprintError(file, "", f"not valid YAML: {_one_line(problem)}",
                             mark.line + 1 if mark else None) from None
    except RecursionError:  # not expected (depth is bounded), but never a traceback
        raise BlueprintError(file, "", f"YAML nested too deeply (limit {MAX_DEPTH} levels)") from None
    try:
        lines = _lines(node) if node is not None else {}
    except _Duplicate as d:
        where = ".".join(str(p) for p in d.path)
        raise BlueprintError(file, where, f"{d.key!r} is given twice (the second would silently win)", d.line) from None
    ctx = _Ctx(file, lines)
    if not isinstance(data, dict):
        raise BlueprintError(file, "", "a blueprint is a YAML mapping with domain, tables and operations")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ctx.error((sorted(unknown)[0],), f"unknown top-level key (known: {', '.join(sorted(TOP_KEYS))})")
    name = data.get("domain")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.error(("domain",), "domain is a lower_snake_case name, e.g. bike_rental")
    clock = str(data.get("clock", "2026-03-02T09:00:00"))
    try:
        datetime.fromisoformat(clock)
    except ValueError:
        raise ctx.error(("clock",), f"clock {clock!r} is not an ISO date-time") from None
    tables = _tables(data.get("tables"), ctx)
    schema = DomainSchema(name=name, title=str(data.get("title") or name.replace("_", " ").title()),
                          description=str(data.get("description", "")), policy=str(data.get("policy", "")),
                          tables=tables, clock=clock, staff=str(data.get("staff") or ""))
    try:
        table_order(schema)
    except ValueError as e:
        raise ctx.error(("tables",), str(e)) from None
    invariants = _invariants(data.get("tables"), schema, ctx)
    for t in tables:
        for c in t.columns:
            if c.faker and not callable(getattr(_faker(), c.faker, None)):
                raise ctx.error(("tables", t.name, "columns", c.name), f"Faker has no provider {c.faker!r}")
    ops_raw = data.get("operations") or {}
    if not isinstance(ops_raw, dict):
        raise ctx.error(("operations",), "operations is a mapping of operation name to its definition")
    ops = [_operation(n, r, schema, ctx) for n, r in ops_raw.items()]
    if data.get("derive", True):
        ops += derived_operations(schema, {o.name for o in ops})
    return Blueprint(schema, ops, text, file, invariants)


def invariant_scope(schema: DomainSchema, table: Table) -> X.Scope:
    """Names an invariant may use: the table's columns (the row's values), and the schema."""
    return X.Scope(schema, {c.name: _param_from_column(c.name, c, f"{table.name}.{c.name}", c.nullable)
                            for c in table.columns})


def _invariants(raw: dict, schema: DomainSchema, ctx: _Ctx) -> dict[str, list[tuple[X.Expr, Requirement]]]:
    """Each table's ``invariants:``, parsed with the row's columns as names (``status != 'active' or
    end_station_id == null``); stored on the table as text, returned as IR."""
    out: dict[str, list[tuple[X.Expr, Requirement]]] = {}
    for t in schema.tables:
        items = (raw.get(t.name) or {}).get("invariants") or []
        path = ("tables", t.name, "invariants")
        if not isinstance(items, list):
            raise ctx.error(path, "invariants is a list of checks every row keeps (one '- ' item per line)")
        scope = invariant_scope(schema, t)
        for i, r in enumerate(items):
            text, msg = (r.get("check"), str(r.get("message", ""))) if isinstance(r, dict) else (r, "")
            if not isinstance(text, str):
                raise ctx.error((*path, i), "an invariant is an expression string, or {check: ..., message: ...}")
            try:
                e = X.parse_expr(text, scope)
            except X.ExprError as err:
                raise ctx.error((*path, i), str(err)) from None
            req = Requirement(check=text.strip(), message=msg)
            t.invariants.append(req)
            out.setdefault(t.name, []).append((e, req))
    return out
