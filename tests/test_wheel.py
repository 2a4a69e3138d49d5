"""The wheel carries the product only: no test double, and the product imports without them.

The test doubles (the API server stand-in, its validation rules, the operator's harness) live in the
testing package gpusched/testing/, which pyproject.toml leaves out of the wheel (CONTRIBUTING.md, "Test
doubles"). This builds the wheel from a copy of the checkout, offline (no build isolation: the dev
extra installs setuptools), and checks both halves of that promise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("gpusched", "solver", "agents", "scheduler", "simulations", "workload")
"""gpusched/ and the top-level folders its symlinks point at (gpusched/solver -> ../solver, ...)."""
TESTING = ROOT / "gpusched" / "testing"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel . --no-deps` on a copy of the source (the build writes build/ and *.egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info")
    for name in PACKAGE_DIRS:
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(src),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
    ]
    result = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("gpusched-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_no_test_double(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "gpusched/scheduler/operator.py" in names  # the product is there (the symlinks were followed)
    doubles = sorted(p.relative_to(ROOT).as_posix() for p in TESTING.rglob("*.py"))
    assert {"gpusched/testing/apiserver.py", "gpusched/testing/harness.py"} <= set(doubles)
    assert [n for n in names if n.startswith("gpusched/testing/")] == []
    assert [
        n for n in names if n.rsplit("/", 1)[-1] in {"testserver.py", "apivalidation.py", "conftest.py"}
    ] == []
    # and no shipped module imports the testing package
    imports = re.compile(rb"^\s*(from|import)\s+gpusched\.testing\b", re.MULTILINE)
    with zipfile.ZipFile(wheel) as z:
        users = [n for n in names if n.endswith(".py") and imports.search(z.read(n))]
    assert users == []


@pytest.mark.slow
def test_product_imports_from_the_wheel_without_the_test_doubles(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Run outside the checkout, the unpacked wheel first on the path, and the testing package made
    # unimportable (an editable install of the checkout would otherwise still find it).
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, pkgutil, sys
        sys.path.insert(0, {str(site)!r})

        class NoTestDoubles(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "gpusched.testing" or name.startswith("gpusched.testing."):
                    raise ImportError("test double imported by the product: " + name)
                return None

        sys.meta_path.insert(0, NoTestDoubles())
        import gpusched, gpusched.scheduler
        assert gpusched.__file__.startswith({str(site)!r}), gpusched.__file__
        mods = ["gpusched.cli"] + [
            m.name for m in pkgutil.walk_packages(gpusched.scheduler.__path__, "gpusched.scheduler.")
            if not m.name.endswith("__main__")
        ]
        for name in mods:
            importlib.import_module(name)
        print(len(mods), "modules")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "modules" in result.stdout
