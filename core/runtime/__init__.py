"""The runtime: what runs tools and episodes. The tool-facing database handle and error types
(:mod:`core.runtime.context`), the sandbox that checks and runs untrusted tool code
(:mod:`core.runtime.sandbox`), argument validation and a single tool call
(:mod:`core.runtime.invoke`), the agent-facing environment an episode runs in
(:mod:`core.runtime.env`) and the domain policy the agent is told (:mod:`core.runtime.policy`).
"""
