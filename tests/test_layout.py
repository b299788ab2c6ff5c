"""The package's shape (docs/architecture.md): imports only go down, lazy imports included; no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "alcli"

# Lower number = lower layer. A module may import its own package and anything in a lower layer.
LAYERS = {
    "errors": 0, "console": 0, "signals": 0, "problems": 0, "__init__": 0,
    "artifacts": 1,
    "kcenter": 2, "images": 2,
    "selection": 3,
    "learn": 4, "labelling": 4, "report": 4, "scale": 4,
    "api": 5, "options": 5,
    "commands": 6,
    "cli": 7, "entry": 8,
}
SIDEWAYS = {("scale", "learn")}  # the Dask embed workers run learn's model


def _unit(module: str) -> str:
    """alcli.learn.data -> learn; alcli.cli -> cli; alcli -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    module = "alcli." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
    here = module.rpartition(".")[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("alcli"))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            if mod == "alcli":  # from alcli import x: x is a module or a name of the package face
                found.update(f"alcli.{a.name}" if (ROOT / a.name).exists() or (ROOT / f"{a.name}.py").exists()
                             else "alcli" for a in node.names)
            elif mod.startswith("alcli"):
                found.add(mod)
    return found


def test_every_module_has_a_layer() -> None:
    units = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir() if p.suffix == ".py" or
             (p.is_dir() and (p / "__init__.py").exists())}
    assert units <= set(LAYERS), f"place {sorted(units - set(LAYERS))} in tests/test_layout.py and the docs"


def test_imports_only_go_down() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        src = _unit("alcli." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
        if path.parent == ROOT and path.name == "__init__.py":
            continue  # the package face re-exports the public API lazily (alcli.api)
        for target in _imports(path):
            dst = _unit(target)
            if dst == src or (src, dst) in SIDEWAYS or LAYERS[dst] < LAYERS[src]:
                continue
            wrong.append(f"{path.relative_to(ROOT.parent)} imports {target}")
    assert not wrong, "imports that do not go down:\n" + "\n".join(wrong)


def test_no_module_over_400_lines() -> None:
    long = [f"{p.relative_to(ROOT.parent)}: {n}" for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400]
    assert not long, long
