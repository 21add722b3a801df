#!/usr/bin/env python3
"""Checks the Python package's layout from its source (ast, nothing imported).

- import cycles between modules (a package's ``__init__`` re-exporting is not a cycle);
- private names used across modules: ``from a import _x`` and ``a._x`` where ``a`` is another
  module of the package (importing a private *module* such as ``ops._ext`` is allowed: it is
  the package's own);
- the largest files and the longest functions, in lines of code (blank lines, comments and
  docstrings not counted).

Usage: python tools/check_layout.py [PACKAGE_DIR] [--max-file-lines N] [--max-function-lines N]
Exit status 1 when there is a cycle, a private cross-module use, or a limit is exceeded.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from pathlib import Path
from typing import Dict, List, Set, Tuple


def modules(root: Path) -> Dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(mods: Dict[str, Path], current: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    is_package = mods[current].name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _top_level_names(path: Path) -> Set[str]:
    names: Set[str] = set()
    for n in ast.parse(path.read_text()).body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in n.targets if isinstance(n, ast.Assign) else [n.target]:
                names.update(x.id for x in ast.walk(t) if isinstance(x, ast.Name))
    return names


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def import_graph(mods: Dict[str, Path]) -> Tuple[Dict[str, Set[str]], List[str]]:
    """(module -> modules it imports, the private cross-module uses found)."""
    pkg = next(iter(mods)).split(".")[0]
    edges: Dict[str, Set[str]] = {m: set() for m in mods}
    private: List[str] = []
    for m, path in mods.items():
        tree = ast.parse(path.read_text())
        aliases: Dict[str, str] = {}  # local name -> package module it names
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(mods, m, node)
                if target.split(".")[0] != pkg:
                    continue
                for a in node.names:
                    full = f"{target}.{a.name}"
                    if full in mods:
                        edges[m].add(full)
                        aliases[a.asname or a.name] = full
                    elif target in mods:
                        edges[m].add(target)
                        if _is_private(a.name) and target != m and a.name in _top_level_names(mods[target]):
                            private.append(f"{m} imports {target}.{a.name}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in mods:
                        edges[m].add(a.name)
                        if a.asname:
                            aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                target = aliases[node.value.id]
                if _is_private(node.attr) and f"{target}.{node.attr}" not in mods and target != m \
                        and node.attr in _top_level_names(mods[target]):
                    private.append(f"{m} uses {target}.{node.attr}")
    return edges, sorted(set(private))


def cycles(mods: Dict[str, Path], edges: Dict[str, Set[str]]) -> List[List[str]]:
    found, seen, stack = [], set(), []

    def visit(u: str) -> None:
        if u in stack:
            found.append(stack[stack.index(u):] + [u])
            return
        if u in seen:
            return
        seen.add(u)
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if mods[v].name != "__init__.py":  # a package re-exporting its modules is not a cycle
                visit(v)
        stack.pop()

    for u in sorted(mods):
        visit(u)
    return found


def _docstring_lines(tree: ast.AST) -> Set[int]:
    lines: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(path: Path) -> Tuple[Set[int], ast.AST]:
    """The line numbers holding code (not blank, not only a comment, not a docstring)."""
    src = path.read_text()
    tree = ast.parse(src)
    lines: Set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines - _docstring_lines(tree), tree


def sizes(mods: Dict[str, Path]) -> Tuple[List[Tuple[int, str]], List[Tuple[int, str]]]:
    """([(lines of the file, module)], [(code lines of the function, module.function)]), largest first."""
    files, funcs = [], []
    for m, path in mods.items():
        lines, tree = code_lines(path)
        files.append((len(path.read_text().splitlines()), m))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = {n for child in ast.walk(node) if child is not node
                         and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                         for n in range(child.lineno, child.end_lineno + 1)}
                count = len([n for n in lines if node.lineno <= n <= node.end_lineno and n not in inner])
                funcs.append((count, f"{m}.{node.name}"))
    return sorted(files, reverse=True), sorted(funcs, reverse=True)


def check(root: Path, max_file_lines: int, max_function_lines: int) -> List[str]:
    """Every problem found, one line each (empty: the layout is clean)."""
    mods = modules(root)
    edges, private = import_graph(mods)
    problems = ["cycle: " + " -> ".join(c) for c in cycles(mods, edges)]
    problems += ["private: " + p for p in private]
    files, funcs = sizes(mods)
    problems += [f"file: {m} has {n} lines (limit {max_file_lines})" for n, m in files if n > max_file_lines]
    problems += [f"function: {f} has {n} lines of code (limit {max_function_lines})"
                 for n, f in funcs if n > max_function_lines]
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parent.parent / "pytexsynth"))
    parser.add_argument("--max-file-lines", type=int, default=420)
    parser.add_argument("--max-function-lines", type=int, default=60)
    args = parser.parse_args(argv)
    root = Path(args.package)
    problems = check(root, args.max_file_lines, args.max_function_lines)
    files, funcs = sizes(modules(root))
    print("largest files (lines): " + ", ".join(f"{m} {n}" for n, m in files[:3]))
    print("longest functions (lines of code): " + ", ".join(f"{f} {n}" for n, f in funcs[:3]))
    print("\n".join(problems) if problems else "no cycles, no private cross-module uses, sizes within the limits")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
