"""The procedural implementation backend: an operation compiled to readable Python source.

The source is what runs (after the sandbox policy accepts it) and what the studio shows.
It calls only ``db`` (a :class:`core.runtime.context.ToolDB`), ``ctx`` (the clock) and the error types.
"""

from __future__ import annotations

import keyword
from typing import Any

from core.data.models import DomainSchema
from core.runtime.sandbox import FORBIDDEN_NAMES, SAFE_BUILTINS
from core.spec import expr as X
from core.spec.blueprint import Operation
from core.spec.interp import op_lookups

PY_CMP = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Names:
    def __init__(self, op: Operation, schema: DomainSchema):
        self.schema = schema
        self.vars: dict[X.Lookup, str] = {}
        self.taken = set(op.params) | {"db", "ctx", "inserted", "result", "row", "rows"}

    def var(self, lk: X.Lookup) -> str:
        if lk not in self.vars:
            base = self.schema.table(lk.table).singular
            if keyword.iskeyword(base) or base in SAFE_BUILTINS or base in FORBIDDEN_NAMES:
                base += "_row"
            name, n = base, 2
            while name in self.taken:
                name = f"{base}_{n}"
                n += 1
            self.taken.add(name)
            self.vars[lk] = name
        return self.vars[lk]


class Compiler:
    def __init__(self, op: Operation, schema: DomainSchema):
        self.op, self.schema = op, schema
        self.names = _Names(op, schema)

    # expressions -------------------------------------------------------------

    def e(self, x: Any) -> str:
        if isinstance(x, X.Lit):
            return repr(x.value)
        if isinstance(x, X.Param):
            return x.name
        if isinstance(x, X.Clock):
            return f"ctx.{x.name}"
        if isinstance(x, X.Field):
            return f'{self.names.var(x.row)}["{x.column}"]'
        if isinstance(x, X.InsertedField):
            return f'inserted["{x.column}"]'
        if isinstance(x, X.BinOp):
            return f"({self.e(x.left)} {x.op} {self.e(x.right)})"
        if isinstance(x, X.Compare):
            return f"{self.e(x.left)} {PY_CMP[x.op]} {self.e(x.right)}"
        if isinstance(x, X.InList):
            opts = ", ".join(self.e(o) for o in x.options)
            return f"{self.e(x.item)} {'not in' if x.negated else 'in'} ({opts},)"
        if isinstance(x, X.BoolOp):  # a truth value, as in the specification (not Python's operand)
            return "bool(" + f" {x.op} ".join(f"({self.e(v)})" for v in x.values) + ")"
        if isinstance(x, X.Not):
            return f"not ({self.e(x.value)})"
        if isinstance(x, X.Neg):
            return f"-({self.e(x.value)})"
        if isinstance(x, X.Agg):
            kw = "".join(f", {c}={self.e(v)}" for c, v in x.filters)
            if x.fn == "sum":
                return f'db.sum("{x.table}", "{x.column}"{kw})'
            call = f'db.count("{x.table}"{kw})'
            return f"({call} > 0)" if x.fn == "exists" else call
        if isinstance(x, X.Call):
            args = ", ".join(self.e(a) for a in x.args)
            if x.fn in ("add_days", "days_between"):
                return f"ctx.{x.fn}({args})"
            if x.fn == "lower":
                return f"str({args}).lower()"
            return f"{x.fn}({args})"
        raise TypeError(f"cannot compile {x!r}")

    # statements ---------------------------------------------------------------

    def compile(self) -> str:
        op = self.op
        sig = ", ".join(["db", "ctx"] + [p.name if not p.optional else f"{p.name}=None" for p in op.spec.params])
        lines = [f"def {op.name}({sig}):"]
        doc = [op.spec.description.strip()]
        if op.spec.requires:
            doc += ["", "Requires:"] + [f"    {r.check}" for r in op.spec.requires]
        if op.spec.effects:
            doc += ["", "Effects:"] + [f"    {t}" for t in op.spec.effects]
        doc += ["", f"Returns: {op.spec.returns_expr or X.render_returns(op.returns)}"]
        doc_text = "\n".join(("    " + d) if d else "" for d in doc).replace('"""', "'''")
        lines.append('    """' + doc_text.lstrip() + '\n    """')
        body: list[str] = []
        for lk in op_lookups(op):
            v = self.names.var(lk)
            key = self.e(lk.key)
            body.append(f'{v} = db.get("{lk.table}", {key})')
            body.append(f"if {v} is None:")
            body.append(f'    raise NotFound("{lk.table}", {key})')
        for e, req in op.requires:
            msg = req.message or f"requirement not met: {req.check}"
            obs = self._observed(e)
            body.append(f"if not ({self.e(e)}):")
            body.append(f"    raise PreconditionFailed({msg!r}, observed={obs})")
        for eff in op.effects:
            body += self._effect(eff)
        body += self._returns()
        lines += ["    " + ln for ln in body]
        return "\n".join(lines) + "\n"

    def _observed(self, e: Any) -> str:
        items = []
        for x in X.walk(e):
            if isinstance(x, X.Field):
                items.append(f'"{x.row.table}.{x.column}": {self.e(x)}')
            elif isinstance(x, X.Agg):
                items.append(f"{X.render(x)!r}: {self.e(x)}")
        items += [f'"{x.name}": {self.e(x)}' for x in X.clock_operands(e)]
        return "{" + ", ".join(dict.fromkeys(items)) + "}"

    def _sets(self, eff: X.Update, row: str) -> str:
        parts = []
        for col, how, v in eff.sets:
            val = self.e(v)
            if how == "+=":
                val = f'{row}["{col}"] + {val}'
            elif how == "-=":
                val = f'{row}["{col}"] - {val}'
            parts.append(f'"{col}": {val}')
        return "{" + ", ".join(parts) + "}"

    def _effect(self, eff: X.Effect) -> list[str]:
        schema = self.schema
        if isinstance(eff, X.Insert):
            t = schema.table(eff.table)
            given = dict(eff.values)
            items = []
            for c in t.columns:
                if c.name == t.primary_key:
                    continue
                val = self.e(given[c.name]) if c.name in given else repr(c.default)
                items.append(f'"{c.name}": {val}')
            return [f'inserted = db.insert("{t.name}", {{{", ".join(items)}}})']
        if isinstance(eff, X.Update):
            pk = schema.table(eff.table).primary_key
            if eff.key is not None:
                lk = X.Lookup(eff.table, eff.key)
                v = self.names.var(lk)
                return [f'db.update("{eff.table}", {v}["{pk}"], {self._sets(eff, v)})']
            kw = ", ".join(f"{c}={self.e(v)}" for c, v in eff.filters or ())
            return [f'for row in db.select("{eff.table}"{", " + kw if kw else ""}):',
                    f'    db.update("{eff.table}", row["{pk}"], {self._sets(eff, "row")})']
        if isinstance(eff, X.Delete):
            lk = X.Lookup(eff.table, eff.key)
            pk = schema.table(eff.table).primary_key
            return [f'db.delete("{eff.table}", {self.names.var(lk)}["{pk}"])']
        raise TypeError(eff)

    def _returns(self) -> list[str]:
        r = self.op.returns
        if isinstance(r, X.RetInserted):
            table = [e.table for e in self.op.effects if isinstance(e, X.Insert)][-1]
            last = max(i for i, e in enumerate(self.op.effects) if isinstance(e, X.Insert))
            if any(not isinstance(e, X.Insert) and e.table == table for e in self.op.effects[last + 1:]):
                pk = self.schema.table(table).primary_key
                return [f'return db.get("{table}", inserted["{pk}"])']  # a later effect changed it
            return ["return inserted"]
        if isinstance(r, X.RetRow):
            if self.op.effects:
                return [f'return db.get("{r.row.table}", {self.e(r.row.key)})']
            return [f"return {self.names.var(r.row)}"]
        if isinstance(r, X.RetOne):
            kw = ", ".join(f"{c}={self.e(v)}" for c, v in r.filters)
            return [f'rows = db.select("{r.table}", {kw})',
                    "if len(rows) != 1:",
                    f'    raise NotFound("{r.table}", {self.e(r.filters[0][1])})',
                    "return rows[0]"]
        if isinstance(r, X.RetList):
            kw = ", ".join(f"{c}={self.e(v)}" for c, v in r.filters)
            return [f'return db.select("{r.table}"{", " + kw if kw else ""})']
        # an object computed after the effects: re-read the rows it names
        out = []
        if self.op.effects:
            for lk in X.lookups(r):
                v = self.names.var(lk)
                out.append(f'{v} = db.get("{lk.table}", {self.e(lk.key)})')
        fields = ", ".join(f'"{k}": {self.e(v)}' for k, v in r.fields)
        return [*out, f"return {{{fields}}}"]


def compile_operation(op: Operation, schema: DomainSchema) -> str:
    return Compiler(op, schema).compile()

