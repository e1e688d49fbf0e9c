"""The layering (ARCHITECTURE.md): nst_ops is pure PyTorch; no import circles anywhere; the
batch and report code never imports a command-line module; every module imports on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGES = ("nst_ops", "manifests", "workflows")
CLI_MODULES = {
    "workflows.cli",
    "workflows.run",
    "workflows.stylize",
    "workflows.manifest_cli",
    "workflows.report_cli",
    "workflows.params_cli",
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules that `name` imports anywhere in its file (top level, functions,
    TYPE_CHECKING and __main__ blocks alike)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        found |= {t for t in targets if t in known and t != name}
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circles() -> None:
    edges = graph()
    assert len(edges) > 40
    assert cycles(edges) == []


def test_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_batch_and_report_code_never_reaches_the_command_line_modules() -> None:
    edges = graph()

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for w in edges[todo.pop()] - seen:
                seen.add(w)
                todo.append(w)
        return seen

    library = [m for m in edges if m not in CLI_MODULES and m.startswith("workflows")]
    assert "workflows.batch.worker" in library and "workflows.report.build" in library
    for module in library:
        assert not reach(module) & CLI_MODULES, f"{module} imports a CLI module"
    assert not any(reach(m) & {n for n in edges if n.startswith("workflows")}
                   for m in edges if m.startswith(("nst_ops", "manifests")))  # fmt: skip


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_nst_ops_imports_no_io_or_orchestration_modules() -> None:
    """Nor torchvision or torch.compile's machinery: importing them costs every worker and CLI
    call seconds (torch._dynamo loads when a captured evaluator is built, not before)."""
    names = ", ".join(m for m in modules() if m.startswith("nst_ops."))
    code = (
        f"import sys, {names}\n"
        "bad = [m for m in ('ray', 'fsspec', 's3fs', 'pyarrow', 'boto3', 'botocore', 'duckdb') "
        "if m in sys.modules]\n"
        "slow = [m for m in ('torchvision', 'torch._dynamo') if m in sys.modules]\n"
        "print(','.join(bad) + ';' + ','.join(slow))"
    )
    bad, slow = run_python(code).split(";")
    assert bad == "", "nst_ops pulled in I/O or orchestration modules"
    assert slow == "", f"nst_ops pulled in {slow} at import"


@pytest.mark.parametrize("name", ["workflows.batch.job", "workflows.report.build"])
def test_batch_and_report_import_alone_without_the_cli(name: str) -> None:
    """The static check above, at run time: the entry modules of each group (which reach all
    of its modules) import in a fresh interpreter and load no CLI module."""
    loaded = run_python(f"import sys, {name}; print(' '.join(sorted(sys.modules)))").split()
    assert not set(loaded) & CLI_MODULES, f"{name} loads {set(loaded) & CLI_MODULES}"
