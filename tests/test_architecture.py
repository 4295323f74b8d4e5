"""The house's rules, read from the code's own imports (ast), so that a forbidden import fails the suite.

The rooms (README "How the code is organised"):
- core: the shared mechanisms in medsets/ (source access, layout search, the base builder, schema,
  checks, duplicates, companions, export, card, picture, synthetic replicas, ...): knows no dataset
  module and no command;
- builders/ (installed as medsets.builders): one module per source, on the core; no training code, no
  command;
- commands: medsets/cli.py, demo.py, evaluation.py, push.py, __main__.py: the command line's modules;
- metrics/: local `evaluate` modules, each standing alone (nothing else of medsets);
- training/: what the fine-tuning scripts share; never a script, never a command;
- scripts/: one file per task, on medsets.training and the metrics; never another script or a command;
- benchmarks/: measure the product; the product never imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"medsets.cli", "medsets.demo", "medsets.evaluation", "medsets.push", "medsets.__main__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ("builders", "cards"):  # mapped into the package by pyproject.toml
        parts = ["medsets"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, absolute; `from . import x` gives package.x."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import builders`
    return found


def files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def room(name: str) -> str:
    if name in COMMANDS:
        return "commands"
    if name.startswith("medsets.builders"):
        return "builders"
    if name.startswith("medsets.metrics"):
        return "metrics"
    if name.startswith("medsets.training"):
        return "training"
    if name.startswith("scripts"):
        return "scripts"
    if name.startswith("benchmarks"):
        return "benchmarks"
    if name == "medsets":
        return "package face"
    return "core"


def within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


# room -> (what it may not import, why)
FORBIDDEN = {
    "core": (("medsets.builders", *COMMANDS, "medsets.training", "scripts", "benchmarks", "transformers", "torch"),
             "the core knows no dataset module, no command and no training code"),
    "builders": (("medsets.training", *COMMANDS, "scripts", "benchmarks", "transformers", "torch"),
                 "a dataset module describes its source; it knows no training code and no command"),
    "training": (("scripts", *COMMANDS, "benchmarks"), "shared training code never reaches into a script or a command"),
    "scripts": (("scripts", *COMMANDS, "benchmarks"), "a script imports medsets.training and the metrics, never "
                                                      "another script or the command line's modules"),
    "commands": (("scripts", "benchmarks"), "the product never imports a script or a benchmark"),
    "package face": (("scripts", "benchmarks"), "the product never imports a benchmark"),
}


def crossings() -> list[str]:
    found = []
    for path in files("medsets", "builders", "cards", "scripts", "benchmarks"):
        name = module_name(path)
        mine = room(name)
        for target in sorted(imports_of(path)):
            if mine == "metrics":
                # A metric module stands alone: `evaluate` loads its folder by path, with nothing else of medsets.
                own = ".".join(name.split(".")[:3])
                if within(target, "medsets") and not within(target, own):
                    found.append(f"{path.relative_to(ROOT)} imports {target}: a metric module stands alone")
                continue
            if within(target, "scripts") and (target == name or name.startswith(target + ".")):
                continue  # a script's own name, or its package
            forbidden, why = FORBIDDEN.get(mine, ((), ""))
            if any(within(target, prefix) for prefix in forbidden):
                found.append(f"{path.relative_to(ROOT)} ({mine}) imports {target}: {why}")
    return found


def test_no_import_crosses_a_forbidden_boundary():
    assert crossings() == []


def test_the_rules_catch_a_forbidden_import():
    """The checker itself: a core module importing a builder, and a metric importing the core, are caught."""
    fake = ROOT / "medsets" / "_architecture_probe.py"
    metric_probe = ROOT / "medsets" / "metrics" / "classification" / "_architecture_probe.py"
    try:
        fake.write_text("from .builders import hep2\n")
        metric_probe.write_text("from medsets.source import Source\n")
        found = crossings()
    finally:
        fake.unlink(missing_ok=True)
        metric_probe.unlink(missing_ok=True)
    assert any(f"{fake.relative_to(ROOT)} (core) imports medsets.builders" in line for line in found), found
    assert any("_architecture_probe.py imports medsets.source: a metric module stands alone" in line
               for line in found), found


@pytest.mark.parametrize("limit", [400])
def test_no_module_is_over_the_limit_without_saying_why(limit):
    """A module over ~400 lines says in its docstring why it is one module ("One module because ...")."""
    long = []
    for path in files("medsets", "builders", "scripts"):
        lines = path.read_text(encoding="utf-8").count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > limit and "One module because" not in docstring:
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert long == []
