"""The task format (see docs/tasks.md): what a verified task is, as stored and exported."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from core.data.models import Model, Provenance
from core.evaluation.reward import Expected, RequiredValue


class ChainStep(Model):
    tool: str
    args: dict[str, Any]
    role: Literal["lookup", "goal"]
    expect: Literal["ok", "precondition"] = "ok"
    sources: dict[str, str] = Field(default_factory=dict)  # param -> "user" | "step" | "lookup"


class StateDelta(Model):
    """The task's initial state as a compact delta over the domain's seed state."""

    upsert: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    delete: dict[str, list[Any]] = Field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(map(len, self.upsert.values())) + sum(map(len, self.delete.values()))


class Identification(Model):
    """A fact from the scenario that must pick out exactly one row (the ambiguity check)."""

    table: str
    filters: dict[str, Any]
    target: Any  # the primary key it must pick


class Scenario(Model):
    """What the user is told to do, shaped like tau2-bench's user scenario.

    ``instruction`` is the first message: the reason for calling and a little of what the user
    knows. The rest of ``known`` is told only when the agent asks for it; ``unknown`` names what the
    user cannot tell (the agent must look it up); ``behaviour`` says how the user acts."""

    persona: str
    goal: str
    known: dict[str, Any] = Field(default_factory=dict)
    instruction: str  # the user's first message
    reason: str = ""  # why the user is calling, in their words
    unknown: list[str] = Field(default_factory=list)  # facts the user does not know ("the rental id")
    behaviour: str = ""
    asks: list[str] = Field(default_factory=list)  # what the user wants to be told (column nouns)
    actor: Literal["customer", "staff", "none"] = "customer"  # who the user is


class GroundTruth(Model):
    final_hash: str
    expected: Expected
    communicate: list[RequiredValue]
    diff: dict[str, Any] = Field(default_factory=dict)
    outcome: Literal["completed", "refused"] = "completed"


class Review(Model):
    status: Literal["pending", "approved", "rejected"] = "pending"
    note: str = ""


class Task(Model):
    id: str
    domain: str
    chain: list[ChainStep]
    initial: StateDelta
    scenario: Scenario
    ground_truth: GroundTruth
    identifications: list[Identification] = Field(default_factory=list)
    expansion: list[str] = Field(default_factory=list)  # "distractors", "extended", "refusal"
    provenance: Provenance = Field(default_factory=Provenance)
    review: Review = Field(default_factory=Review)

    _state_key: tuple[int, str] | None = PrivateAttr(default=None)

    @property
    def state_key(self) -> str:
        """Identifies the initial state: the id alone is not enough (regenerated tasks reuse ids).

        Cached per ``initial`` object; treat a task's initial state as immutable once used."""
        key = self._state_key
        if key is None or key[0] != id(self.initial):
            digest = hashlib.sha256(self.initial.model_dump_json().encode()).hexdigest()[:16]
            key = self._state_key = (id(self.initial), f"{self.id}:{digest}")
        return key[1]

    @property
    def is_refusal(self) -> bool:
        return self.ground_truth.outcome == "refused"

    @property
    def has_distractors(self) -> bool:
        return "distractors" in self.expansion
