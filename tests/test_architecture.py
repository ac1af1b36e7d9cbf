"""What the package's layout promises beyond import-linter's contracts (``[tool.importlinter]``, ``./scripts/test``).

import-linter checks that data flows one way (connection → signing → tokens → http → hooks →
operators, sensors, triggers, CLI), inside each layer too, and that the provider info and the sync
hook import nothing they must not. This module checks, by parsing every module with :mod:`ast`
(nothing is imported), what a contract cannot say:

* operators and sensors import the trigger only inside the function that defers, so that running
  a task does not load aiohttp (a contract sees an import, not where it sits);
* no import cycle at all, counting imports inside functions and under ``if TYPE_CHECKING``;
* no module longer than 500 lines;
* no module compares a kind (a grant, a client authentication, a keystore type, a signer, a
  token store...) to a string, except the parser that turns strings into kinds;
* importing what a DAG file imports loads no signing stack (a fresh interpreter).

The checkers are tested on small packages written to a temporary folder, so they are known to
fail when they should.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "airflow_jwt_provider"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE
MAX_MODULE_LINES = 500
#: The modules that turn a connection's strings into kinds: the only ones that compare kinds to strings.
PARSING_MODULES = (
    f"{PACKAGE}.connection.parser",
    f"{PACKAGE}.connection.extras",
    f"{PACKAGE}.connection.kinds",
    f"{PACKAGE}.connection._signer_group",
    f"{PACKAGE}.connection._token_cache_group",
    f"{PACKAGE}.connection._http_group",
)


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen by the module that runs it."""

    importer: str  # dotted module name
    target: str  # dotted name of the imported module (a submodule when ``from x import submodule``)
    path: Path
    line: int
    in_function: bool  # runs when the function is called, not when the module is imported
    type_only: bool  # under ``if TYPE_CHECKING:``: never runs

    @property
    def runtime_module_level(self) -> bool:
        return not (self.in_function or self.type_only)

    def describe(self, root: Path) -> str:
        where = "inside a function" if self.in_function else "for type checking" if self.type_only else "module level"
        return f"{self.path.relative_to(root.parent)}:{self.line} imports {self.target} ({where})"


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module of the package by dotted name (a package's ``__init__`` by the package's name)."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path, is_package: bool, known_modules: Iterable[str]) -> None:
        self.module = module
        self.path = path
        self.package = module if is_package else module.rpartition(".")[0]
        self.known_modules = set(known_modules)
        self.function_depth = 0
        self.type_checking_depth = 0
        self.imports: list[Import] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        self.imports.append(
            Import(
                importer=self.module,
                target=target,
                path=self.path,
                line=node.lineno,
                in_function=self.function_depth > 0,
                type_only=self.type_checking_depth > 0,
            )
        )

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        is_type_checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        if not is_type_checking:
            self.generic_visit(node)
            return
        self.type_checking_depth += 1
        for child in node.body:
            self.visit(child)
        self.type_checking_depth -= 1
        for child in node.orelse:  # the else branch of ``if TYPE_CHECKING`` does run
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base_parts = self.package.split(".")
            if node.level > 1:
                base_parts = base_parts[: -(node.level - 1)]
            base = ".".join([*base_parts, node.module] if node.module else base_parts)
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.known_modules else base, node)


def collect_imports(package_dir: Path, package: str) -> list[Import]:
    """Every import statement of every module of the package, top level and in functions."""
    modules = module_names(package_dir, package)
    imports: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _ImportCollector(name, path, path.name == "__init__.py", modules)
        collector.visit(tree)
        imports.extend(collector.imports)
    return imports


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def in_subpackage(name: str, package: str, subpackages: Iterable[str]) -> bool:
    return any(is_within(name, f"{package}.{sub}") for sub in subpackages)


# --------------------------------------------------------------------------- the rules


def eager_trigger_imports(imports: Iterable[Import], package: str) -> list[Import]:
    """(b) Triggers importing operators/sensors; operators/sensors importing triggers other than in a function.

    An ``if TYPE_CHECKING`` import of a trigger is allowed: it never runs, so it loads nothing.
    """
    bad: list[Import] = []
    for imp in imports:
        if (
            in_subpackage(imp.importer, package, ["triggers"])
            and in_subpackage(imp.target, package, ["operators", "sensors"])
        ) or (
            in_subpackage(imp.importer, package, ["operators", "sensors"])
            and in_subpackage(imp.target, package, ["triggers"])
            and imp.runtime_module_level
        ):
            bad.append(imp)
    return bad


def import_graph(imports: Iterable[Import], package: str, modules: Iterable[str] = ()) -> dict[str, set[str]]:
    """Module → modules of the package it imports, anywhere: at module level, in functions, for type checking.

    ``modules`` are nodes even when they import nothing (an empty ``__init__``).
    """
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for imp in imports:
        graph.setdefault(imp.importer, set())
        if is_within(imp.target, package) and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)

    cycles: list[list[str]] = []
    for component in components:
        members = set(component)
        start = min(component)
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        cycles.append(_cycle_through(graph, start, members))
    return sorted(cycles)


def _cycle_through(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """A path ``start → … → start`` inside one strongly connected component (breadth first: a shortest one)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for successor in sorted(graph.get(node, ())):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if successor in members and successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected component


def report(title: str, offending: Iterable[Import], root: Path) -> str:
    lines = sorted(imp.describe(root) for imp in offending)
    return f"{title}:\n  " + "\n  ".join(lines)


def oversized_modules(package_dir: Path, limit: int = MAX_MODULE_LINES) -> list[str]:
    """Modules longer than ``limit`` lines: split by concern instead."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            problems.append(f"{path.relative_to(package_dir.parent)} has {lines} lines (at most {limit})")
    return problems


def kind_string_comparisons(package_dir: Path, package: str, kinds: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """``x == "pkcs11"``, ``x in ("jks", "jceks")``...: a kind compared to a string outside ``allowed`` modules."""
    kinds = set(kinds)
    problems = []
    for name, path in module_names(package_dir, package).items():
        if name in set(allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            for operand in [node.left, *node.comparators]:
                values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                for value in values:
                    if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value in kinds:
                        problems.append(
                            f"{path.relative_to(package_dir.parent)}:{node.lineno} compares to {value.value!r}"
                        )
    return problems


def violations(package_dir: Path, package: str) -> list[str]:
    """Every rule broken by the package, each with the offending imports; empty when the layers hold."""
    imports = collect_imports(package_dir, package)
    problems: list[str] = []
    if bad := eager_trigger_imports(imports, package):
        problems.append(
            report(
                "triggers must not import operators/sensors, and operators/sensors import triggers only inside "
                "the function that defers (as operators/base.py does)",
                bad,
                package_dir,
            )
        )
    for cycle in find_cycles(import_graph(imports, package, module_names(package_dir, package))):
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


# --------------------------------------------------------------------------- the package itself


def test_the_package_keeps_its_layers() -> None:
    problems = violations(PACKAGE_DIR, PACKAGE)
    assert not problems, "\n\n".join(problems)


def test_no_module_is_longer_than_500_lines() -> None:
    problems = oversized_modules(PACKAGE_DIR)
    assert not problems, "\n".join(problems)


def every_kind_value() -> set[str]:
    """The strings a kind is spelled with: members of the kind types, registered signers and stores, presets."""
    from airflow_jwt_provider.common.registry import SIGNER_GROUP, TOKEN_STORE_GROUP, entry_point_names
    from airflow_jwt_provider.connection import kinds
    from airflow_jwt_provider.http.polling import PollOutcome
    from airflow_jwt_provider.signing.certificates import CertificateState

    values = {
        str(member.value) for kind in (kinds.GrantType, kinds.ClientAuthMethod, kinds.KeystoreType) for member in kind
    }
    values |= {member.value for member in (*PollOutcome, *CertificateState)}
    values |= {*entry_point_names(SIGNER_GROUP), *entry_point_names(TOKEN_STORE_GROUP), kinds.MEMORY_TOKEN_CACHE}
    return values


def test_kinds_are_compared_as_types_not_strings() -> None:
    kinds = every_kind_value()
    assert {"pkcs11", "private_key_jwt", "google_json", "redis", "expired", "wait"} <= kinds
    problems = kind_string_comparisons(PACKAGE_DIR, PACKAGE, kinds, PARSING_MODULES)
    assert not problems, "\n".join(problems)


def test_the_parser_sees_the_imports_the_rules_are_about() -> None:
    """Guards the rules against a parser that sees nothing (and so finds nothing wrong)."""
    imports = collect_imports(PACKAGE_DIR, PACKAGE)
    seen = {(imp.importer, imp.target, imp.in_function) for imp in imports}
    assert (f"{PACKAGE}.tokens.credentials", f"{PACKAGE}.signing.assertion", False) in seen
    assert (f"{PACKAGE}.operators.base", f"{PACKAGE}.triggers.http", True) in seen  # the lazy import when deferring
    assert (f"{PACKAGE}.hooks.jwt_bearer_async", "aiohttp", False) in seen
    assert (f"{PACKAGE}.hooks.jwt_bearer", f"{PACKAGE}.tokens.credentials", True) in seen  # signing stack on first use
    # a device signer's code when it is built
    assert (f"{PACKAGE}.signing.signers.pkcs11", f"{PACKAGE}.signing.signers.pkcs11.signer", True) in seen
    assert (f"{PACKAGE}.signing.signers.base", f"{PACKAGE}.exceptions", False) in seen
    type_only = {(imp.importer, imp.target) for imp in imports if imp.type_only}
    assert (f"{PACKAGE}.hooks.jwt_bearer", f"{PACKAGE}.tokens.credentials") in type_only
    modules = module_names(PACKAGE_DIR, PACKAGE)
    graph = import_graph(imports, PACKAGE, modules)
    assert set(graph) == set(modules)
    assert len(modules) > 60
    assert f"{PACKAGE}.signing.assertion" in graph[f"{PACKAGE}.tokens.credentials"]


# --------------------------------------------------------------------------- the checkers, on packages made here


def write_package(root: Path, files: dict[str, str]) -> Path:
    package_dir = root / "pkg"
    for relative, text in {"__init__.py": "", **files}.items():
        path = package_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        for parent in path.relative_to(package_dir).parents:
            init = package_dir / parent / "__init__.py"
            if not init.exists():
                init.write_text("", encoding="utf-8")
    return package_dir


LAYERED = {
    "settings.py": "import json\n",
    "credentials.py": "from pkg.settings import json\nfrom . import settings\n",
    "hooks/sync.py": "from pkg import credentials\nimport requests\n",
    "hooks/jwt_bearer.py": "from pkg.hooks.sync import credentials\n",
    "triggers/t.py": "from pkg.hooks import jwt_bearer\n",
    "operators/base.py": (
        "from typing import TYPE_CHECKING\nfrom pkg.hooks.jwt_bearer import x\n"
        "if TYPE_CHECKING:\n    from pkg.triggers.t import T\n"
        "def defer():\n    from pkg.triggers import t\n"
    ),
}


def test_a_well_layered_package_passes(tmp_path: Path) -> None:
    assert violations(write_package(tmp_path, LAYERED), "pkg") == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"operators/base.py": "from pkg.triggers.t import T\n"},
            "pkg/operators/base.py:1 imports pkg.triggers.t (module level)",
        ),
        (
            {"sensors/s.py": "import pkg.triggers\n"},
            "pkg/sensors/s.py:1 imports pkg.triggers (module level)",
        ),
        (
            {"triggers/t.py": "def run():\n    from pkg.sensors.s import poke\n", "sensors/s.py": ""},
            "pkg/triggers/t.py:2 imports pkg.sensors.s (inside a function)",
        ),
        (
            {"settings.py": "from pkg import credentials\n"},
            "import cycle: pkg.credentials -> pkg.settings -> pkg.credentials",
        ),
        (  # an import inside a function closes a cycle too
            {"settings.py": "def later():\n    from pkg import credentials\n"},
            "import cycle: pkg.credentials -> pkg.settings -> pkg.credentials",
        ),
        (  # and so does one for type checking only
            {"settings.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.credentials\n"},
            "import cycle: pkg.credentials -> pkg.settings -> pkg.credentials",
        ),
    ],
)
def test_the_checker_names_each_offending_import(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    problems = violations(write_package(tmp_path, {**LAYERED, **files}), "pkg")
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_cycles_are_reported_with_their_path(tmp_path: Path) -> None:
    files = {
        "a.py": "import pkg.b\n",
        "b.py": "from pkg import c\n",
        "c.py": "from . import a\n",
        "d.py": "from pkg.c import x\n",  # d -> c, nothing back: no cycle
        "g.py": "from pkg import g\n",  # a module importing itself is not counted as a cycle
    }
    problems = violations(write_package(tmp_path, files), "pkg")
    assert problems == ["import cycle: pkg.a -> pkg.b -> pkg.c -> pkg.a"]


def test_find_cycles_reports_each_cycle_once() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"e"}, "f": set()}
    assert find_cycles(graph) == [["a", "b", "a"], ["c", "d", "c"], ["e", "e"]]


def test_the_size_checker_counts_lines(tmp_path: Path) -> None:
    package_dir = write_package(tmp_path, {"small.py": "x = 1\n" * 10, "big.py": "x = 1\n" * 11})
    assert oversized_modules(package_dir, limit=10) == ["pkg/big.py has 11 lines (at most 10)"]


def test_the_kind_checker_finds_string_comparisons(tmp_path: Path) -> None:
    package_dir = write_package(
        tmp_path,
        {
            "a.py": 'if signer == "pkcs11":\n    pass\nok = name == "other"\n',
            "b.py": 'x = kind in ("jks", "jceks")\n',
            "parser.py": 'y = value == "pkcs11"\n',  # the parser may
        },
    )
    problems = kind_string_comparisons(package_dir, "pkg", {"pkcs11", "jks"}, ["pkg.parser"])
    assert problems == ["pkg/a.py:1 compares to 'pkcs11'", "pkg/b.py:1 compares to 'jks'"]


def iter_names(imports: Iterable[Import]) -> Iterator[str]:
    for imp in imports:
        yield f"{imp.importer}->{imp.target}"


def test_from_imports_resolve_submodules_and_names(tmp_path: Path) -> None:
    package_dir = write_package(
        tmp_path,
        {
            "x.py": "from pkg import y, CONSTANT\nfrom pkg.sub import z as zz\nfrom .sub.z import f\nimport pkg.sub\n",
            "y.py": "",
            "sub/z.py": "from .. import y\nfrom . import z\n",
        },
    )
    names = sorted(iter_names(collect_imports(package_dir, "pkg")))
    assert names == [
        "pkg.sub.z->pkg.sub.z",
        "pkg.sub.z->pkg.y",
        "pkg.x->pkg",  # CONSTANT is a name, not a module
        "pkg.x->pkg.sub",
        "pkg.x->pkg.sub.z",
        "pkg.x->pkg.sub.z",
        "pkg.x->pkg.y",
    ]


@pytest.mark.slow
def test_dag_files_importing_the_operator_sensor_or_hook_do_not_load_the_signing_stack() -> None:
    """DAG parsing pays for what a DAG file imports: PyJWT, cryptography's keys, aiohttp wait until a task runs.

    (``benchmarks/bench_tokens.py`` times it; this guards the reason it is fast, in a fresh interpreter.)
    """
    import subprocess
    import sys

    script = """
import sys
from airflow.sdk import BaseOperator
import requests
before = set(sys.modules)
import airflow_jwt_provider.operators.http, airflow_jwt_provider.sensors.http, airflow_jwt_provider.hooks.jwt_bearer
import airflow_jwt_provider.triggers.http, airflow_jwt_provider.triggers.event  # watchers are built in DAG files
heavy = ("jwt", "aiohttp", "airflow_jwt_provider.tokens.credentials", "airflow_jwt_provider.signing.key_files.loader",
         "cryptography.hazmat.primitives.serialization.pkcs12")
print(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("jwt", "aiohttp") or m in heavy))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-2000:]
