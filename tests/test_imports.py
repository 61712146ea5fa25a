"""The house's shape: imports point one way, and functions stay short.

Layers, top to bottom: the site (sharinghub_mlflow: settings, URLs, pages for people,
observability), then the HTTP edge (mlflow_bridge), then GitLab's truth (projects). A module
imports its own layer or a lower one, never a higher one (not even by a string naming it, as
importlib, Django's dotted paths or a gunicorn target do), and no two modules import each
other, even through others or inside a function. mlflow_bridge does not import sharinghub_mlflow at
all, not even its settings: settings come through django.conf.settings, like any Django app's.
Every function of the service (tests and bench aside) is at most MAX_FUNCTION_LINES long, no
module but the route table spells an MLflow route rule, every package the service imports is
in requirements.txt, and docs/architecture.md's module table gives every module one line.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Top first: a module may import from its own layer or any layer after it.
LAYERS = ("sharinghub_mlflow", "mlflow_bridge", "projects")
MAX_FUNCTION_LINES = 40


def modules_of(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of the packages under `root`, by dotted name (a package by its own)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """The dotted names a module imports, anywhere in it (in functions too), resolved when
    relative; `from a import b` names both a.b and a, since b may be a module or an attribute."""
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def named_modules(path: Path, packages: tuple[str, ...]) -> set[str]:
    """The modules of `packages` a string of the module names whole, as importlib, Django's
    dotted paths or a gunicorn target ("pkg.module:app") do: each prefix of the dotted name."""
    pattern = re.compile(rf"(?:{'|'.join(map(re.escape, packages))})(?:\.\w+)*(?::\w+)?")
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        text = node.value if isinstance(node, ast.Constant) else None
        # A dot or a colon: a bare package name is also an app label, not an import.
        if isinstance(text, str) and pattern.fullmatch(text) and any(c in text for c in ".:"):
            parts = text.split(":")[0].split(".")
            names.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return names


def import_graph(
    root: Path, packages: tuple[str, ...], strings: bool = False
) -> dict[str, set[str]]:
    """Module → the modules of `packages` it imports (its own package's __init__ aside); with
    `strings`, also those a string of it names (settings name modules without importing them,
    so only the layers are checked so)."""
    modules = modules_of(root, packages)
    graph = {}
    for module, path in modules.items():
        names = imported_names(module, path)
        if strings:
            names |= named_modules(path, packages)
        targets = set()
        for name in names:
            # `from projects import access` is an edge to projects.access, not to projects.
            if name in modules and not any(
                other.startswith(name + ".") and other in modules for other in names
            ):
                targets.add(name)
        graph[module] = targets - {module}
    return graph


def third_party_imports(root: Path, packages: tuple[str, ...]) -> set[str]:
    """The top-level names of what the packages import from outside themselves and the
    standard library."""
    names = set()
    for module, path in modules_of(root, packages).items():
        names.update(name.split(".")[0] for name in imported_names(module, path) if name)
    return {name for name in names if name not in sys.stdlib_module_names} - set(packages)


def requirement_names(path: Path) -> set[str]:
    """The distributions a requirements file pins, by their normalised names."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {_normalised(re.split(r"[=<>\[;~ ]", line)[0]) for line in lines if line}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# The text of an MLflow route rule: a versioned API path, or one of the unversioned ones.
RULE_TEXT = re.compile(
    r"^/(?:api/|ajax-api/)?(?:[23]\.0/?mlflow|[23]\.0/mlflow-artifacts)"
    r"|^/(?:model-versions/)?get-artifact$|^/(?:graphql|v1/traces|static-files/|build/)"
)


def rule_texts(root: Path, packages: tuple[str, ...], home: str) -> list[str]:
    """Each string of the packages that spells an MLflow route rule, outside its `home`."""
    found = []
    for module, path in modules_of(root, packages).items():
        if module == home:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and RULE_TEXT.search(text):
                found.append(f"{module}:{node.lineno} {text!r}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(graph: dict[str, set[str]], layers: tuple[str, ...]) -> list[str]:
    """Each import of a higher layer by a lower one, as "importer → imported"."""

    def rank(module: str) -> int:
        return layers.index(module.split(".")[0])

    return sorted(
        f"{module} → {target}"
        for module, targets in graph.items()
        for target in targets
        if rank(target) < rank(module)
    )


def long_functions(root: Path, packages: tuple[str, ...], limit: int) -> list[str]:
    """Each function (or method) longer than `limit` lines, from `def` to its last line."""
    found = []
    for module, path in modules_of(root, packages).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{module}.{node.name} ({length} lines)")
    return sorted(found)


class TestTheService:
    def test_it_has_no_import_cycle(self):
        assert cycles(import_graph(ROOT, LAYERS)) == []

    def test_it_never_imports_a_higher_layer_from_a_lower_one(self):
        assert upward_imports(import_graph(ROOT, LAYERS, strings=True), LAYERS) == []

    def test_it_has_no_function_over_the_limit(self):
        assert long_functions(ROOT, LAYERS, MAX_FUNCTION_LINES) == []

    def test_it_spells_route_rules_in_the_route_table_only(self):
        assert rule_texts(ROOT, LAYERS, home="mlflow_bridge.edge.routes") == []

    def test_its_requirements_pin_every_package_it_imports(self):
        pinned = requirement_names(ROOT / "requirements.txt")
        distributions = packages_distributions()

        unpinned = [
            name
            for name in third_party_imports(ROOT, LAYERS)
            if not pinned & {_normalised(d) for d in distributions.get(name, [name])}
        ]

        assert sorted(unpinned) == []

    def test_its_architecture_page_gives_every_module_one_line(self):
        text = (ROOT / "docs" / "architecture.md").read_text()
        table = text[text.index("| module | what it owns |") :].split("\n\n", 1)[0]
        listed = [line.split("`")[1] for line in table.splitlines()[2:]]
        modules = [
            str(path.relative_to(ROOT))
            for path in modules_of(ROOT, LAYERS).values()
            if path.name != "__init__.py" and "migrations" not in path.parts
        ]

        assert sorted(listed) == sorted(modules)


def plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FAKE_LAYERS = ("site", "edge", "base")


class TestTheChecker:
    """The checks above catch what they are for, on small fake packages."""

    @pytest.fixture
    def house(self, tmp_path: Path) -> Path:
        return plant(
            tmp_path,
            {
                "site/__init__.py": "",
                "site/pages.py": "from edge import views\nfrom base.models import Row\n",
                "edge/__init__.py": "",
                "edge/views.py": "from . import rules\nfrom base import models\n",
                "edge/rules.py": "import re\n",
                "base/__init__.py": "",
                "base/models.py": "from dataclasses import dataclass\n",
            },
        )

    def test_it_finds_nothing_in_a_tidy_house(self, house):
        graph = import_graph(house, FAKE_LAYERS)

        assert graph["site.pages"] == {"edge.views", "base.models"}
        assert graph["edge.views"] == {"edge.rules", "base.models"}
        assert cycles(graph) == []
        assert upward_imports(graph, FAKE_LAYERS) == []

    def test_it_finds_a_cycle_closed_inside_a_function(self, house):
        plant(house, {"base/models.py": "def load():\n    from base import store\n"})
        plant(house, {"base/store.py": "from base.models import load\n"})

        assert cycles(import_graph(house, FAKE_LAYERS)) == [["base.models", "base.store"]]

    def test_it_finds_a_cycle_through_a_third_module(self, house):
        plant(house, {"edge/rules.py": "from .views import x\n"})

        assert cycles(import_graph(house, FAKE_LAYERS)) == [["edge.rules", "edge.views"]]

    @pytest.mark.parametrize(
        ("module", "text", "violation"),
        [
            pytest.param("base/models.py", "from edge.views import x\n",
                         "base.models → edge.views", id="bottom-imports-edge"),
            pytest.param("base/models.py", "import site.pages\n",
                         "base.models → site.pages", id="bottom-imports-site"),
            pytest.param("edge/rules.py", "def f():\n    from site import pages\n",
                         "edge.rules → site.pages", id="edge-imports-site-in-a-function"),
        ],
    )  # fmt: skip
    def test_it_finds_an_import_from_a_lower_layer_into_a_higher_one(
        self, house, module, text, violation
    ):
        plant(house, {module: text})

        assert violation in upward_imports(import_graph(house, FAKE_LAYERS), FAKE_LAYERS)

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("import importlib\nP = importlib.import_module('site.pages')\n",
                         id="importlib"),
            pytest.param("TARGET = 'site.pages:application'\n", id="gunicorn-target"),
            pytest.param("HANDLER = 'site.pages.handler'\n", id="django-dotted-path"),
        ],
    )  # fmt: skip
    def test_it_finds_a_module_of_a_higher_layer_named_by_a_string(self, house, text):
        plant(house, {"base/models.py": text})

        assert "base.models → site.pages" in upward_imports(
            import_graph(house, FAKE_LAYERS, strings=True), FAKE_LAYERS
        )

    def test_it_takes_no_sentence_for_a_module_name(self, house):
        plant(house, {"base/models.py": '"""Rows. site pages show them (site.pages)."""\n'})

        assert upward_imports(import_graph(house, FAKE_LAYERS, strings=True), FAKE_LAYERS) == []

    def test_it_finds_a_rule_spelt_outside_the_route_table(self, house):
        plant(house, {"edge/rules.py": 'RUN = "/2.0/mlflow/runs/create"\n'})
        plant(
            house, {"edge/views.py": 'def f(rule):\n    return rule == "/ajax-api/3.0/mlflow/x"\n'}
        )

        assert rule_texts(house, FAKE_LAYERS, home="edge.rules") == [
            "edge.views:2 '/ajax-api/3.0/mlflow/x'"
        ]

    def test_it_finds_a_function_over_the_limit(self, house):
        body = "".join(f"    x{i} = {i}\n" for i in range(40))
        plant(house, {"edge/rules.py": f"def short():\n    pass\n\n\ndef long():\n{body}"})

        assert long_functions(house, FAKE_LAYERS, 40) == ["edge.rules.long (41 lines)"]
