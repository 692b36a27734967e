"""The package's layers: each module imports tlkit only from its own layer or the layers before it (README,
"Where things are"), so data flows one way and the paper's ideas sit below everything that uses them."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tlkit"
# In order; a module belongs to the first layer whose prefix names it.
LAYERS = [
    ["tlkit.records"],
    ["tlkit.calls", "tlkit.mae", "tlkit.pkt", "tlkit.irm", "tlkit.rl", "tlkit.models", "tlkit.allocator"],
    ["tlkit.scoring"],
    ["tlkit.data"],
    ["tlkit.modules"],
    ["tlkit.cli", "tlkit.callbacks", "tlkit.score", "tlkit.ablate", "tlkit"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    return next(i for i, prefixes in enumerate(LAYERS) if any(name == p or name.startswith(p + ".") for p in prefixes))


def imported(path: Path) -> set[str]:
    """The tlkit modules `path` imports (`from tlkit import rl` names tlkit.rl)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tlkit"):
            names |= {f"{node.module}.{a.name}" if node.module == "tlkit" else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("tlkit")}
    return names


def test_no_import_runs_back_up_a_layer():
    back = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "tlkit":  # the package's lazy exports name the top classes
            continue
        back += [f"{name} (layer {layer(name)}) imports {other} (layer {layer(other)})"
                 for other in sorted(imported(path)) if layer(other) > layer(name)]
    assert not back, "\n".join(back)


def test_every_module_has_a_layer_and_a_test_file_beside_its_place():
    tests = Path(__file__).resolve().parent
    untested = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name.startswith("_") or "readers" in path.parts:  # the readers share tests/data/test_readers.py
            continue
        layer(module_name(path))
        mirror = tests / path.relative_to(PACKAGE).parent / f"test_{path.stem}.py"
        if not mirror.is_file():
            untested.append(str(mirror.relative_to(tests.parent)))
    assert not untested, untested
