"""The shape of the code, kept by a test (issue 23): each room small enough to read, no
import circle, no private name across modules, and a strategy decided by its declared
properties, never by its name. Each failure names the place and what is wrong.

The code is read as text (the ``ast`` of every module of ``cachestudio/``), nothing is run.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "cachestudio"
#: The most lines a class or a function may take (docstrings and comments included).
MAX_CLASS_LINES = 500
MAX_FUNCTION_LINES = 100
#: Where a strategy's name may be written as a literal: its declaration and its code.
STRATEGY_HOMES = {"engine/strategykinds.py", "engine/strategies.py"}


def modules() -> dict[str, ast.Module]:
    return {
        str(p.relative_to(PACKAGE)): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))
    }


def dotted(rel: str) -> str:
    parts = ["cachestudio", *Path(rel).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(rel: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from … import`` reads from."""
    if not node.level:
        return node.module or ""
    here = dotted(rel).split(".")
    is_package = rel.endswith("__init__.py")
    base = here if is_package else here[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def for_types_only(mod: ast.Module) -> set[int]:
    """The import statements under ``if TYPE_CHECKING:``: the type checker's, not the program's."""
    out = set()
    for node in ast.walk(mod):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def graph(tree: dict[str, ast.Module]) -> dict[str, set[str]]:
    """module -> the project's modules it imports when it runs (at its top or inside a
    function; not those under ``if TYPE_CHECKING:``)."""
    names = {dotted(rel) for rel in tree}
    out: dict[str, set[str]] = {}
    for rel, mod in tree.items():
        deps = set()
        typing_only = for_types_only(mod)
        for node in ast.walk(mod):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                base = imported(rel, node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    deps.add(full if full in names else base)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        out[dotted(rel)] = {d for d in deps if d in names and d != dotted(rel)}
    return out


def test_no_class_over_500_lines_and_no_function_over_100():
    big = []
    for rel, mod in modules().items():
        for node in ast.walk(mod):
            size = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
            if isinstance(node, ast.ClassDef) and size > MAX_CLASS_LINES:
                big.append(f"{rel}: class {node.name} has {size} lines (at most {MAX_CLASS_LINES})")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > MAX_FUNCTION_LINES:
                big.append(f"{rel}: {node.name}() has {size} lines (at most {MAX_FUNCTION_LINES})")
    assert big == [], "split by job:\n" + "\n".join(big)


def test_no_import_circle():
    """Imports inside functions count too: a lazy import still ties two rooms together."""
    deps = graph(modules())
    circles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(deps[node]):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own modules
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(deps):
        if module not in state:
            visit(module, [module])
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_no_private_name_is_imported_from_another_module():
    found = []
    for rel, mod in modules().items():
        for node in ast.walk(mod):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{rel}:{node.lineno}: {alias.name} from {imported(rel, node)}")
    assert found == [], "make these public (or keep them where they are used):\n" + "\n".join(found)


def test_a_strategy_is_named_only_where_it_is_declared():
    """Decisions go by a strategy's declared properties (strategykinds.queues_writes …), so a
    named lane and a new strategy take the same path as the three of the seed."""
    from cachestudio.engine.strategykinds import STRATEGIES

    found = []
    for rel, mod in modules().items():
        if rel in STRATEGY_HOMES:
            continue
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(mod)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(mod):
            if isinstance(node, ast.Constant) and node.value in STRATEGIES and id(node) not in docstrings:
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == [], "decide by the strategy's declaration, not its name:\n" + "\n".join(found)


def test_the_checks_above_can_fail():
    """The checks find what they look for (so a pass means something)."""
    tree = {
        "a.py": ast.parse("from .b import x\nfrom .c import _hidden\n"),
        "b.py": ast.parse("def f():\n    from .a import y\nif TYPE_CHECKING:\n    from .c import Z\n"),
        "c.py": ast.parse(""),
    }
    assert graph(tree)["cachestudio.a"] == {"cachestudio.b", "cachestudio.c"}
    assert graph(tree)["cachestudio.b"] == {"cachestudio.a"}
    assert imported("ui/x.py", ast.parse("from ..engine.config import K").body[0]) == "cachestudio.engine.config"  # type: ignore[arg-type]
