"""The wheel ships what an installed feedletter needs: every template, every flow, the package.

Built offline from a copy of the sources (the venv's setuptools, no build isolation), so the test
writes nothing into the repository and needs no package index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "feedletter", "templates", "flows"]


def _files(folder: Path, pattern: str) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[zipfile.ZipFile, str]:
    tree = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(out), str(tree)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (path,) = out.glob("feedletter-*.whl")
    return zipfile.ZipFile(path), built.stdout + built.stderr


def test_the_wheel_holds_every_template_flow_and_module(wheel: tuple[zipfile.ZipFile, str]) -> None:
    names = set(wheel[0].namelist())
    templates = {f"feedletter/templates/{n}" for n in _files(ROOT / "templates", "*")}
    flows = {f"feedletter_flows/{n}" for n in _files(ROOT / "flows", "*.py")}
    modules = {f"feedletter/{n}" for n in _files(ROOT / "feedletter", "*.py")} | {"feedletter/py.typed"}
    assert len(templates) > 20 and len(flows) > 3
    assert templates - names == set()
    assert flows - names == set()
    assert modules - names == set()


def test_the_build_leaves_no_folder_out_and_names_the_license(wheel: tuple[zipfile.ZipFile, str]) -> None:
    archive, log = wheel
    # setuptools warns, and leaves the files out, when a folder of data is not a listed package.
    assert "is absent from the `packages` configuration" not in log
    (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    assert "License-Expression: MIT" in archive.read(metadata).decode()
