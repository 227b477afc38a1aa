"""The packages import one way: schemas <- processors <- streams <- sinks <- workerfile
(a package imports only those to its left, and itself). The sinks read Kafka through the
streams' codec and login; nothing of the streams needs a sink."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("schemas", "processors", "streams", "sinks", "workerfile")


def imports_against_the_layers() -> list[str]:
    wrong = []
    for rank, package in enumerate(LAYERS):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in LAYERS and LAYERS.index(top) > rank:
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return wrong


def test_every_package_imports_only_the_layers_below_it():
    assert imports_against_the_layers() == []


def test_the_check_sees_an_import_against_the_layers(tmp_path, monkeypatch):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "bad.py").write_text("from processors.fold import fold_event\n")
    for package in LAYERS[1:]:
        (tmp_path / package).mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imports_against_the_layers() == ["schemas/bad.py:1 imports processors.fold"]
