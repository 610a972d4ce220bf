"""The data model: the pydantic records a synthesized domain is made of (:mod:`core.data.models`) and
the task records (:mod:`core.data.taskmodel`), the SQLite domain database tools act on
(:mod:`core.data.db`), the on-disk workspace that holds every artifact (:mod:`core.data.store`), the
deterministic seed data (:mod:`core.data.seed`) and the invariants every state must keep
(:mod:`core.data.invariants`).
"""
