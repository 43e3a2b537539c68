"""The tape's modules import one another one way, at module level only."""

import ast
from pathlib import Path

import backproplab.tape

TAPE = Path(backproplab.tape.__file__).parent


def tape_imports(path: Path) -> tuple[set[str], list[str]]:
    """Tape modules imported at module level, and imports found anywhere else."""
    tree = ast.parse(path.read_text())
    module_level = set(tree.body)
    top, nested = set(), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if node not in module_level:
            nested.append(ast.unparse(node))
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            top.update([node.module] if node.module else [a.name for a in node.names])
    return top, nested


def test_no_cycles_and_no_function_level_imports():
    graph = {}
    for path in TAPE.glob("*.py"):
        if path.name == "__init__.py":
            continue
        top, nested = tape_imports(path)
        assert not nested, f"{path.name} imports inside a function: {nested}"
        graph[path.stem] = top & {p.stem for p in TAPE.glob("*.py")}
    # core is at the bottom: it knows no primitive
    assert graph["core"] == set()
    assert "core" in graph["ops"] and "ops" not in graph["core"]
    done = set()

    def visit(name, stack):
        assert name not in stack, f"import cycle: {' -> '.join(stack + [name])}"
        if name in done:
            return
        for dep in graph[name]:
            visit(dep, stack + [name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_tracers_have_their_operators():
    from backproplab.tape import core, ops

    x = core.ReverseTrace().new_input(ops.zeros_like(1.0) + 2.0)
    assert isinstance(x * x, core.Box) and isinstance(x.T, core.Box)
    assert float(x * x) == 4.0
