"""DESIGN.md's array API rule: layer, optimizer, model and training code never imports
numpy, cupy or torch; it takes the namespace from its inputs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import xdl

PACKAGE = Path(xdl.__file__).parent
RULED = ["nn", "optim", "models", "training.py", "thread_tuning.py", "gradcheck.py"]
FORBIDDEN = {"numpy", "cupy", "cupyx", "torch"}


def _ruled_files():
    for entry in RULED:
        path = PACKAGE / entry
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


def _imported_libraries(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                yield node.lineno, name


@pytest.mark.parametrize("path", list(_ruled_files()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_array_library_imports(path):
    hits = list(_imported_libraries(path))
    assert not hits, f"{path} imports {hits}: get the namespace with xdl.backends.namespace"


def test_the_scan_finds_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom numpy import zeros\nimport torch.nn as tnn\n")
    assert [name for _, name in _imported_libraries(bad)] == ["numpy", "torch.nn"]
