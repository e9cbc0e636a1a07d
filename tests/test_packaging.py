"""The installed `kleer-hubspot` command imports what the repository holds.

`./run.sh` runs the console script from `.venv/bin`, where the repository is not on `sys.path`:
only the packages `pyproject.toml` lists are importable. The suite itself imports from the
checkout, so a package missing from the list (it happened to `sync/`) breaks `./run.sh` while
every other test passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "bench", "scripts", ".venv"}


def _packages_on_disk() -> set[str]:
    found = set()
    for init in ROOT.rglob("__init__.py"):
        parts = init.relative_to(ROOT).parent.parts
        if parts and parts[0] not in NOT_SHIPPED and not parts[0].startswith("."):
            found.add(".".join(parts))
    return found


def test_every_package_of_the_repository_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert _packages_on_disk() - listed == set()
    assert {m for m in config["py-modules"] if not (ROOT / f"{m}.py").exists()} == set()


def test_the_installed_packages_import_outside_the_checkout(tmp_path):
    """What `./run.sh` (the console script in .venv/bin) can import: every package and module,
    from a directory that is not the repository."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    names = sorted(_packages_on_disk() | set(config["py-modules"]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import importlib, sys\nfor n in sys.argv[1:]: importlib.import_module(n)"
    done = subprocess.run([sys.executable, "-c", code, *names], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
