"""ScaleEnv engine: synthesis, tasks and runtime. Never imports textual.

Grouped by stage (docs/architecture.md, "Package layout"): ``core.spec`` (the blueprint language
and its interpreter), ``core.data`` (models, domain DB, workspace, seed data, invariants),
``core.synthesis`` (phase 1: tools, tests, the tool dependency graph), ``core.runtime`` (what runs
tools and episodes), ``core.tasks`` (phase 2: task generation), ``core.evaluation`` (rewards and
claims) and ``core.agents`` (the built-in agents, the episode loop, the scripted user).
"""

__version__ = "0.1.0"
