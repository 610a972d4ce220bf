"""The engine runs headless: core/ never imports textual, and synthesis does not pay for litellm."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            out.append((node.lineno, str(node.args[0].value)))
    return out


def test_no_file_under_core_imports_textual_or_the_tui():
    files = sorted(CORE.rglob("*.py"))
    assert files, "core/ has no Python files"
    bad = [f"{f.relative_to(ROOT)}:{line}: imports {mod}" for f in files for line, mod in _imports(f)
           if mod.split(".")[0] in ("textual", "scaleenv_tui")]
    assert bad == []


def _loaded_after(code: str) -> list[str]:
    probe = (f"import sys, json\n{code}\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_importing_the_synthesis_pipeline_loads_neither_textual_nor_litellm():
    loaded = _loaded_after("import core.synthesis.synth, core.data.store, core.spec.blueprint")
    assert "core" in loaded
    assert "textual" not in loaded
    assert "litellm" not in loaded


def test_importing_every_core_module_leaves_textual_out():
    mods = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in CORE.rglob("*.py"))
    assert "core.tasks.generator" in mods and "core.spec" in mods
    loaded = _loaded_after("\n".join(f"import {m}" for m in mods))
    assert "textual" not in loaded
    assert "scaleenv_tui" not in loaded
