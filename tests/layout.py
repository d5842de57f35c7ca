"""The package's import graph: root modules, cycles between modules and between parts, and imports
against the parts' declared order. Every import counts, inside functions and under TYPE_CHECKING too.

    python tests/layout.py [PACKAGE_DIR]

prints one line per finding and ends with one JSON line:
{"root_modules": N, "module_cycles": K, "part_cycles": K, "order_violations": K}.
tests/test_layout.py asserts the same figures: at most 8 root modules, no cycle, no violation.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_hfmodels"
#: the root modules everything may import (the core), then the parts in the one order they depend in:
#: a part imports only parts of earlier layers; the front ends (plugin, cli) import anything before them
#: and nothing imports them but the generated suite, which pytest runs through the plugin.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "modes", "results", "samples", "model_folder"}),
    frozenset({"registry"}),
    frozenset({"cache"}),
    frozenset({"hub"}),
    frozenset({"sources"}),
    frozenset({"cases"}),
    frozenset({"convert"}),
    frozenset({"runners"}),
    frozenset({"execution"}),
    frozenset({"db"}),
    frozenset({"report"}),
    frozenset({"plugin", "cli"}),
    frozenset({"suite"}),
)
MAX_ROOT_MODULES = 8


@dataclass(frozen=True)
class Layout:
    root_modules: tuple[str, ...]
    module_cycles: tuple[tuple[str, ...], ...]
    part_cycles: tuple[tuple[str, ...], ...]
    order_violations: tuple[str, ...]  #: "a.b -> c.d (part a imports part c, a later or the same layer)"
    parts: Mapping[str, frozenset[str]]  #: part -> parts it imports

    def figures(self) -> dict[str, int]:
        return {
            "root_modules": len(self.root_modules),
            "module_cycles": len(self.module_cycles),
            "part_cycles": len(self.part_cycles),
            "order_violations": len(self.order_violations),
        }


def modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's modules that `name` imports, anywhere in its body."""
    known = set(known)
    package = name.split(".")[0]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            prefix = ".".join([*base[: len(base) - node.level + 1], node.module or ""]).strip(".")
            prefix = prefix if node.level else (node.module or "")
            candidates = [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and candidate.startswith(package):
                targets.add(candidate)
    return targets


def cycles(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(tuple(sorted(component)))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


def part_of(module: str) -> str | None:
    """`pkg.cache.store` -> `cache`; `pkg.errors` -> `errors`; the package itself -> None."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None


def layer_of(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def analyse(package: Path = PACKAGE) -> Layout:
    found = modules(package)
    graph = {name: imports(name, path, found) for name, path in found.items()}
    parts: dict[str, set[str]] = {}
    violations = []
    for name, targets in graph.items():
        source = part_of(name)
        for target in targets:
            dest = part_of(target)
            if source is None or dest is None or source == dest:
                continue
            parts.setdefault(source, set()).add(dest)
            if layer_of(dest) >= layer_of(source) and not (layer_of(dest) == layer_of(source) == 0):
                violations.append(f"{name} -> {target} (part {source} imports part {dest})")
    roots = tuple(sorted(p.stem for p in package.glob("*.py") if p.name != "__init__.py"))
    return Layout(
        root_modules=roots,
        module_cycles=tuple(cycles(graph)),
        part_cycles=tuple(cycles(parts)),
        order_violations=tuple(sorted(violations)),
        parts={k: frozenset(v) for k, v in sorted(parts.items())},
    )


def main(argv: list[str]) -> int:
    layout = analyse(Path(argv[0]).resolve() if argv else PACKAGE)
    print(f"root modules ({len(layout.root_modules)}): {', '.join(layout.root_modules)}")
    for part, imported in layout.parts.items():
        print(f"  {part} -> {', '.join(sorted(imported))}")
    for cycle in layout.module_cycles:
        print("module cycle: " + " <-> ".join(cycle))
    for cycle in layout.part_cycles:
        print("part cycle: " + " <-> ".join(cycle))
    for violation in layout.order_violations:
        print("against the order: " + violation)
    figures = layout.figures()
    print(json.dumps(figures))
    ok = figures["root_modules"] <= MAX_ROOT_MODULES and not any(
        figures[k] for k in ("module_cycles", "part_cycles", "order_violations")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
