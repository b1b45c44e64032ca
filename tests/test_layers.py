"""The layers of docs/architecture.md hold: a module imports only from its
own layer and the layers above it (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "device"
# Top to bottom, as in docs/architecture.md.
LAYERS = ["core", "sensing", "perception", "model_store", "decision", "output", "record", "camera_path", "pipeline",
          "view", "app", "tools", "cli"]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "device" and parts[1] in LAYERS else None


def test_no_module_imports_from_a_layer_below_its_own() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        own = layer_of(".".join(rel.parts))
        if own is None:
            continue  # device/__init__.py, __main__.py
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [])
            for name in names:
                other = layer_of(name)
                if other is not None and LAYERS.index(other) > LAYERS.index(own):
                    wrong.append(f"{rel} ({own}) imports {name} ({other})")
    assert wrong == []


def test_the_table_lists_the_layers_in_this_order() -> None:
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    folders = [line.split("`")[1] for line in doc.splitlines() if line.startswith("| ") and "`device/" in line
               and line.split("|")[2].strip().startswith("`device/")]
    assert [f.removeprefix("device/").removesuffix("/").removesuffix(".py") for f in folders] == LAYERS
