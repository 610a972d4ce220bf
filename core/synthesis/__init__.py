"""Phase 1, synthesis: from a blueprint to verified tools. Implementation backends
(:mod:`core.synthesis.backends`, the procedural compiler in :mod:`core.synthesis.codegen`) write each
operation's code; :mod:`core.synthesis.proctest` and :mod:`core.synthesis.arrange` build and arrange the
test cases it must pass; :mod:`core.synthesis.synth` drives implement-and-test per operation; and
:mod:`core.synthesis.graph` builds the tool dependency graph that task generation walks.
"""
