"""The layers of leadflow (leadflow/__init__.py, docs/architecture.md "Layers"): contract (`schemas/`)
and core (`leadflow/` core modules) at the bottom, the services (`services/`: the stages) above
them, the app (CLI, commands, pipeline wiring, serve, run, ...) on top. An import may only go
down or stay in its layer: nothing in services reaches up into the app, core imports neither
services nor the app, and so the layers have no import cycle.

Imports are read from the source (ast), including those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the app: leadflow's modules and packages that wire the stages into commands (leadflow/__init__.py)
APP = frozenset({
    "leadflow.cli", "leadflow.commands", "leadflow.run", "leadflow.report", "leadflow.bench", "leadflow.grafana",
    "leadflow.simulator", "leadflow.pipeline", "leadflow.worker", "leadflow.replay", "leadflow.serve",
    "leadflow.serve_processes",
    "leadflow.importer", "leadflow.kpis_cli", "leadflow.contact_centre_cli", "leadflow.rollups_cli",
})
# bottom to top: an import may go to its own layer or a lower one
RANK = {"contract": 0, "core": 1, "services": 2, "app": 3}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer of a project module (None: a third-party or standard library one)."""
    top = module.split(".")[0]
    if top == "schemas":
        return "contract"
    if top == "services":
        return "services"
    if top == "leadflow":
        if any(module == app or module.startswith(app + ".") for app in APP):
            return "app"
        return "core"
    return None


def imports_of(path: Path) -> set[str]:
    """Every module the file imports, at any depth (inside functions and conditionals too).
    `from pkg import name` counts as an import of pkg.name as well (name may be a submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def project_modules() -> dict[str, Path]:
    files = [p for top in ("leadflow", "services", "schemas") for p in (ROOT / top).rglob("*.py")]
    return {_module_name(p): p for p in files}


def edges() -> list[tuple[str, str, str, str]]:
    """(importer, its layer, imported, its layer) for every import of a project module."""
    out = []
    for name, path in sorted(project_modules().items()):
        own = layer_of(name)
        for imported in sorted(imports_of(path)):
            other = layer_of(imported)
            if other is not None:
                out.append((name, own, imported, other))
    return out


def _upward(importers: set[str]) -> list[str]:
    return [f"{name} ({own}) imports {imported} ({other})" for name, own, imported, other in edges()
            if own in importers and RANK[other] > RANK[own]]


def test_the_app_list_names_real_modules():
    modules = project_modules()
    for app in APP:
        assert app in modules, f"{app}: no such module or package under leadflow/"


def test_services_and_schemas_import_no_app_module():
    bad = [line for line in _upward({"services", "contract"}) if line.endswith("(app)")]
    assert not bad, "services/ and schemas/ must not import the app:\n" + "\n".join(bad)


def test_core_imports_neither_services_nor_the_app():
    bad = _upward({"core"})
    assert not bad, "leadflow's core modules must import only core and schemas/:\n" + "\n".join(bad)


def test_schemas_import_only_schemas():
    bad = _upward({"contract"})
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_the_layers():
    graph: dict[str, set[str]] = {layer: set() for layer in RANK}
    for _, own, _, other in edges():
        if own != other:
            graph[own].add(other)

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                return seen + (nxt,)
            if nxt not in seen:
                found = cycle_from(start, nxt, seen + (nxt,))
                if found:
                    return found
        return None

    cycles = [" -> ".join(c) for layer in RANK if (c := cycle_from(layer, layer, (layer,)))]
    assert not cycles, "import cycles between layers: " + "; ".join(cycles)


def test_the_docstring_of_leadflow_lists_the_layers():
    """leadflow/__init__.py names every app module and every core module of leadflow/."""
    import leadflow

    doc = leadflow.__doc__
    app_part, core_part = doc.split("- app,")[1], doc.split("- core,")[1].split("- services,")[0]
    tops = {name.split(".")[1] for name in project_modules() if name.startswith("leadflow.")}
    for top in sorted(tops):
        listed = app_part if f"leadflow.{top}" in APP else core_part
        assert f" {top}" in listed.replace(",", " ").replace("\n", " "), \
            f"leadflow/{top}: not listed as {'app' if f'leadflow.{top}' in APP else 'core'} in leadflow/__init__.py"
