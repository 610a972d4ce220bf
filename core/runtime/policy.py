"""The policy as the agent receives it: the clock, the blueprint's policy, and the rules derived from it.

The blueprint's own text comes first after the date. Two clauses follow, derived from the
blueprint so that a task's ground truth never asks for something the policy does not say:

* **Who may ask** (when some operation has an ``actor``): what customers may ask for, for their own
  records only, and what only staff (the blueprint's ``staff`` role) may ask for.
* **Refusals**: a request that cannot be done is not done, and the agent says so and tells the user
  what stands in the way, with the value that blocks it (the reward checks both, docs/tasks.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from core.data.models import DomainSchema, ToolSpec
from core.tasks.wording import with_article

REFUSAL_CLAUSE = ("- When a request cannot be done, do not do it: say that it could not be done and tell the user "
                  "what stands in the way, with the value that blocks it (for example the balance or the date).")


def _phrase(spec: ToolSpec) -> str:
    return spec.name.replace("_", " ")


def actor_clause(schema: DomainSchema, specs: Iterable[ToolSpec]) -> str:
    """Who may ask for what, from the operations' ``actor``; "" when no operation says."""
    specs = [s for s in specs if not s.derived]
    if all(s.actor == "either" for s in specs):
        return ""
    staff = schema.staff or "member of staff"
    customer = [s for s in specs if s.actor in ("customer", "either")]
    only_staff = [s for s in specs if s.actor == "staff"]
    lines = []
    if customer:
        lines.append("- Customers may ask, for their own records only: " + ", ".join(map(_phrase, customer)) + ".")
    if only_staff:
        lines.append(f"- Only staff may ask for: {', '.join(map(_phrase, only_staff))}. {with_article(staff).capitalize()} who asks "
                     "says so; they may act on any customer's records. Refuse these to customers.")
    return "\n".join(lines)


def agent_policy(schema: DomainSchema, specs: Iterable[ToolSpec] = ()) -> str:
    """The domain's fixed clock first, since rules such as "overdue" or "today or later" depend on
    it, then the blueprint's policy text, then the derived clauses."""
    now = datetime.fromisoformat(schema.clock)
    text = f"Today is {now:%A}, {now.day} {now:%B %Y} ({now:%Y-%m-%d}); the time is {now:%H:%M}.\n\n"
    text += schema.policy.rstrip("\n")
    for clause in (actor_clause(schema, specs), REFUSAL_CLAUSE):
        if clause:
            text += "\n" + clause
    return text + "\n"
