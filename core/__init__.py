"""ScaleEnv engine: synthesis, tasks and runtime. Never imports textual."""

__version__ = "0.1.0"
