"""The layering of DESIGN §3, checked on every import in the package (import-linter style).

Each module belongs to a layer; it may import its own package and the layers below it,
never a layer above or a sibling it has no business with. Imports under ``TYPE_CHECKING``
and inside functions count too: a lazy import is still a dependency. Only ``cli/`` prints
or exits.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentflow_jobs"

# layer of each top-level part of the package; a part not listed here is bottom-layer
# (errors, wire, chat, hashing, interpolate, log, ...), which imports only bottom parts
LAYERS = {
    "io": 0,
    "operations": 1,
    "providers": 1,
    "engine": 2,
    "sdk": 3,
    "server": 3,
    "spec": 4,
    "runner": 5,
    "watch": 6,
    "cli": 7,
    # the console script: imports the command line with the collector paused
    "launch": 8,
}
# parts a layer must not import even though they sit below it (the arrows)
FORBIDDEN = {
    "operations": {"providers"},
    "providers": {"operations"},
    "runner": {"engine", "providers", "operations", "server"},
    "sdk": {"server"},
    "watch": {"engine", "providers", "operations", "server"},
}
# the deliberate crash point of the crash tests stands in for `kill -9`
EXITS_ALLOWED = {("crash.py", "os._exit")}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        yield rel, ast.parse(path.read_text(), filename=str(path))


def _part(dotted: str) -> str | None:
    """``agentflow_jobs.engine.store`` -> ``engine``; None outside the package."""
    names = dotted.split(".")
    if names[0] != "agentflow_jobs":
        return None
    return names[1] if len(names) > 1 else ""


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from agentflow_jobs import engine`
                if node.module == "agentflow_jobs":
                    yield node.lineno, f"agentflow_jobs.{alias.name}"


def _layer(part: str) -> int:
    return LAYERS.get(part.removesuffix(".py"), -1)


def _violations() -> Iterator[str]:
    for rel, tree in _modules():
        here = rel.split("/")[0].removesuffix(".py")
        for line, module in _imports(tree):
            there = _part(module)
            if there is None or there == "" or there.removesuffix(".py") == here:
                continue
            there = there.removesuffix(".py")
            if _layer(there) > _layer(here) or there in FORBIDDEN.get(here, set()):
                yield f"{rel}:{line}: {here} imports {module}"


def test_no_module_imports_a_layer_above_it_or_a_forbidden_sibling() -> None:
    found = list(_violations())
    assert not found, "layering violations:\n" + "\n".join(found)


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def test_only_the_cli_prints_or_exits() -> None:
    banned = {"print", "exit", "quit", "sys.exit", "os._exit", "click.echo", "click.secho"}
    found = [
        f"{rel}:{node.lineno}: {_call_name(node)}"
        for rel, tree in _modules()
        if not rel.startswith("cli/")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _call_name(node) in banned
        and (rel, _call_name(node)) not in EXITS_ALLOWED
    ]
    assert not found, "printing or exiting outside cli/:\n" + "\n".join(found)


@pytest.mark.parametrize("limit", [400])
def test_no_module_is_over_the_style_limit(limit: int) -> None:
    long = [
        f"{path.relative_to(PACKAGE)}: {n} lines"
        for path in sorted(PACKAGE.rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > limit
    ]
    assert not long, f"modules over {limit} lines (STYLE.md):\n" + "\n".join(long)


def test_no_function_is_over_the_style_limit() -> None:
    long = [
        f"{rel}:{node.lineno}: {node.name} is {node.end_lineno - node.lineno + 1} lines"
        for rel, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 40
    ]
    assert not long, "functions over 40 lines (STYLE.md):\n" + "\n".join(long)
