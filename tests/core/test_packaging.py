"""Each package installs on its own beside core (PEP 420 namespace, no seqverse/__init__.py).

Installs the wheels (not editable) with ``pip --no-deps --target`` into a fresh folder and imports
them from a clean interpreter whose only path to seqverse is that folder; torch and numpy come from
this venv's site-packages, which is what a user's own environment would provide.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ["genomics", "speech", "vision", "recsys"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    paths = [str(ROOT / "packages" / p) for p in ["core", *DOMAINS]]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), *paths],
        check=True,
    )
    return target


def _import(site, module):
    # The install folder goes first; this venv's site-packages (torch, numpy) goes AFTER the
    # standard library, as site.py would put it: PYTHONPATH would put it before, and the old
    # `typing` backport that resemblyzer pulls in would then shadow the standard library's.
    purelib = sysconfig.get_paths()["purelib"]
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); sys.path.append({purelib!r}); "
        f"import {module}, seqverse; print(list(seqverse.__path__))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -S: skip site, so the editable installs' path hooks of this venv cannot supply seqverse
    return subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True)


def test_no_namespace_init_file():
    for pkg in ["core", *DOMAINS]:
        assert not (ROOT / "packages" / pkg / "src" / "seqverse" / "__init__.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module", ["seqverse.core.backbones", *(f"seqverse.{d}.cli" for d in DOMAINS)])
def test_installed_package_imports(site, module):
    result = _import(site, module)
    assert result.returncode == 0, result.stderr
    assert str(site) in result.stdout, "seqverse was imported from somewhere other than the install"
