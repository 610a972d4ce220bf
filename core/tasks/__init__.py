"""Phase 2, task generation: chains of goals sampled along the tool dependency graph, each with its
ground truth (the oracle's calls, the expected state delta and the values to report)
(:mod:`core.tasks.generator`), the customer-ownership checks that keep a task's rows the customer's
own (:mod:`core.tasks.ownership`), and the wording the instructions are written with
(:mod:`core.tasks.wording`).
"""
