"""The specification language: a domain blueprint (YAML) parsed and checked into typed operations
(:mod:`core.spec.blueprint`), the expression language its preconditions, effects and invariants are
written in (:mod:`core.spec.expr`), and the reference interpreter that runs an operation straight
from its specification (:mod:`core.spec.interp`). Everything downstream is derived from, and checked
against, what this package reads.
"""
