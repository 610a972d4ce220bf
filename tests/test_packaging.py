"""The supply chain: what make installs is the locked, tested set, and litellm stays off pulled releases."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK = {canonicalize_name(n): Version(v) for n, _, v in
        (line.partition("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
         if line and not line.startswith("#"))}
REQS = [Requirement(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]]
# releases pulled after credential-stealing code shipped in them
COMPROMISED = ["1.82.7", "1.82.8", "1.107.0", "1.107.1", "1.107.5"]


@pytest.mark.parametrize("version", COMPROMISED)
def test_litellm_range_excludes_the_compromised_releases(version):
    [litellm] = [r for r in REQS if r.name == "litellm"]
    assert not litellm.specifier.contains(version)


@pytest.mark.parametrize("req", REQS, ids=[r.name for r in REQS])
def test_every_dependency_is_locked_inside_its_range(req):
    locked = LOCK.get(canonicalize_name(req.name))
    assert locked is not None, f"{req.name} is not in requirements.lock"
    assert req.specifier.contains(locked, prereleases=True), f"lock has {req.name}=={locked}, outside {req.specifier}"


def test_make_installs_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    installs = [ln for ln in makefile.splitlines() if "pip install" in ln and "-e" in ln]
    assert installs and all("-c requirements.lock" in ln for ln in installs)
