"""The vocabulary: every model in core/data/models.py survives a JSON round trip unchanged."""

from __future__ import annotations

import inspect
import json
import types
import typing
from typing import Any, Literal

import pytest
from pydantic import BaseModel

import core.data.models as M

MODELS = sorted((c for _, c in inspect.getmembers(M, inspect.isclass)
                 if issubclass(c, BaseModel) and c.__module__ == M.__name__ and c is not M.Model),
                key=lambda c: c.__name__)


def example(tp: Any, depth: int = 0) -> Any:
    """A non-trivial value of type ``tp`` (every field filled, nested models included)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return {"nested": [1, 2.5, "three", None, True]}
    if origin is Literal:
        return args[-1]
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return example(non_none[0], depth)
    if origin is list:
        return [example(args[0], depth + 1)] if args else [1]
    if origin is dict:
        return {"key": example(args[1], depth + 1)} if args else {"key": 1}
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        return build(tp, depth + 1)
    return {str: "text", int: 7, float: 2.5, bool: True}[tp]


def build(cls: type[BaseModel], depth: int = 0) -> BaseModel:
    hints = typing.get_type_hints(cls)
    return cls(**{name: example(hints[name], depth) for name in cls.model_fields})


def test_the_vocabulary_is_all_here():
    names = {c.__name__ for c in MODELS}
    assert {"Column", "Table", "ParamSpec", "Requirement", "ReturnShape", "ToolSpec", "TestCase", "TestResult",
            "Implementation", "ToolRecord", "GraphEdge", "Provenance", "DomainSchema", "DomainStats",
            "Domain"} <= names


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_json_round_trip_with_every_field_set(cls):
    m = build(cls)
    text = m.model_dump_json()
    back = cls.model_validate_json(text)
    assert back == m
    assert back.model_dump() == m.model_dump()
    assert json.loads(back.model_dump_json()) == json.loads(text)


def _instances(obj: Any, out: dict[type, list]) -> None:
    if isinstance(obj, BaseModel):
        out.setdefault(type(obj), []).append(obj)
        for name in type(obj).model_fields:
            _instances(getattr(obj, name), out)
    elif isinstance(obj, list | tuple):
        for x in obj:
            _instances(x, out)
    elif isinstance(obj, dict):
        for x in obj.values():
            _instances(x, out)


def test_json_round_trip_of_a_real_domain(bike_domain):
    """Every model instance inside a synthesized domain, and the stats, round-trip exactly."""
    found: dict[type, list] = {}
    _instances(bike_domain, found)
    _instances(bike_domain.stats(), found)
    assert {M.Domain, M.DomainSchema, M.Table, M.Column, M.ToolRecord, M.ToolSpec, M.ParamSpec, M.ReturnShape,
            M.Requirement, M.Implementation, M.TestResult, M.TestCase, M.GraphEdge, M.Provenance,
            M.DomainStats} <= set(found)
    for cls, objs in found.items():
        for m in objs:
            assert cls.model_validate_json(m.model_dump_json()) == m, cls.__name__


def test_unknown_fields_are_refused():
    """On-disk formats are strict: a typo in a stored document is an error, not silently dropped."""
    data = build(M.GraphEdge).model_dump()
    data["lable"] = {}
    with pytest.raises(ValueError, match="lable"):
        M.GraphEdge.model_validate(data)
