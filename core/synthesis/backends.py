"""Generation backends: one gateway for every generative step.

``procedural`` (the default) compiles implementations from the blueprint, offline and
deterministic. A litellm model string (``openai/...``, ``anthropic/...``, ``ollama/...``)
selects the LLM path, which plugs into the same interface: whatever writes the code, the
implementation goes through exactly the same sandbox policy and procedural tests.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.data.models import DomainSchema, Implementation
from core.spec.blueprint import Operation
from core.synthesis.codegen import compile_operation


class Backend(Protocol):
    name: str
    max_attempts: int

    def implement(self, op: Operation, schema: DomainSchema, feedback: list[str]) -> Implementation:
        """Source for ``op``; ``feedback`` holds the failures of the previous attempt."""
        ...

    def instruction(self, draft: str, known: dict[str, Any], persona: str) -> str:
        """The user's first message, from a draft composed of intent phrases.

        Whatever comes back is checked by the caller: every known fact must still be in it."""
        ...


class ProceduralBackend:
    name = "procedural"
    max_attempts = 1  # deterministic: a second attempt would write the same code

    def implement(self, op: Operation, schema: DomainSchema, feedback: list[str]) -> Implementation:
        return Implementation(tool=op.name, source=compile_operation(op, schema), backend=self.name)

    def instruction(self, draft: str, known: dict[str, Any], persona: str) -> str:
        return draft  # offline: the composed draft is the instruction


class BackendUnavailable(ValueError):
    pass


def get_backend(name: str) -> Backend:
    if name in ("procedural", "", None):
        return ProceduralBackend()
    if "/" in name:
        raise BackendUnavailable(
            f"backend {name!r}: the LLM path is not available in this version; use --backend procedural")
    raise BackendUnavailable(f"unknown backend {name!r}: use 'procedural' or a litellm model string such as "
                             "'openai/gpt-4o-mini'")
