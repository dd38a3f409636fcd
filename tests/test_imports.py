"""The package's import graph, function-local imports included, has no cycle; function-local imports are
only the few listed in DEVELOPERS.md: the commands' (``brain2text/commands/``: the CLI imports a command
module to build its ``--help``, so each imports its stack inside ``run``) and the ones marked
``# noqa: PLC0415 -- reason``."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "brain2text"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def imports_of(module: str) -> set[str]:
    """Project modules ``module`` imports anywhere in its body (module level or inside functions)."""
    tree = ast.parse(MODULES[module].read_text())
    skip = _type_checking_nodes(tree)
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                out.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {m for m in out if m in MODULES and m != module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_the_package():
    graph = {m: imports_of(m) for m in MODULES}
    assert sum(len(v) for v in graph.values()) > 100  # the walk sees the real graph
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_local_imports_say_why():
    """Every import inside a function carries ``# noqa: PLC0415 -- reason`` (ruff enforces the marker)."""
    bare = []
    for module, path in MODULES.items():
        if module.startswith(f"{PACKAGE}.commands."):
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)) and "PLC0415 --" not in lines[inner.lineno - 1]:
                        bare.append(f"{module}:{inner.lineno}")
    assert not bare, bare


def test_usage_errors_of_the_decoding_commands_come_back_without_torch():
    """``infer``/``evaluate`` list the strategies in --help and check --strategy against the registry, but a
    usage error elsewhere on their command line is reported before torch and the decoding stack load."""
    import subprocess
    import sys

    code = ("import sys; from brain2text.cli import main; "
            "rc = main(['infer', '--model_path', 'm', '--input_file', 'x.npy', '--sfreq', 'fast', '--output_file', "
            "'o.json']); assert rc == 2, rc; "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "rc = main(['evaluate', '--model_path', 'm', '--output_file', 'o.json', '--strategy', 'nope']); "
            "assert rc == 2, rc; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
    assert "invalid choice: 'nope'" in proc.stderr and "'lexicon'" in proc.stderr
