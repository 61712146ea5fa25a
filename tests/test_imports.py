"""The house's shape: imports point one way, and functions stay short.

Layers, top to bottom: the site (sharinghub_mlflow: settings, URLs, pages for people,
observability), then the HTTP edge (mlflow_bridge), then GitLab's truth (projects). A module
imports its own layer or a lower one, never a higher one (not even by a string naming it, as
importlib, Django's dotted paths or a gunicorn target do), and no two modules import each
other, even through others or inside a function. mlflow_bridge does not import sharinghub_mlflow at
all, not even its settings: settings come through django.conf.settings, like any Django app's.
Inside mlflow_bridge, the seam (mlflow_bridge.embedded) alone reaches into MLflow: nothing
else imports MLflow's non-public modules or its `_private` names, or spells SQL over MLflow's
tables; and the request's way (the edge and the seam) never imports the operations beside it.
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
# The one package that touches MLflow's internals (tests/test_mlflow_seam.py pins what it uses).
SEAM = "mlflow_bridge.embedded"
# MLflow's public Python API, which any module may import (public names only): its exceptions
# and entities. Everything else of MLflow's (mlflow.server, mlflow.store, mlflow.utils,
# mlflow.protos, mlflow.prompt...) is the seam's.
MLFLOW_PUBLIC = frozenset({"mlflow", "mlflow.exceptions", "mlflow.entities"})
# What a request passes through, and what runs beside it (which it must never import).
REQUEST_PATH = ("mlflow_bridge.edge", "mlflow_bridge.embedded")
BESIDE_THE_REQUEST = ("mlflow_bridge.operations", "mlflow_bridge.management")


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


def _inside(module: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(module == p or module.startswith(p + ".") for p in packages)


def mlflow_internals(root: Path, packages: tuple[str, ...], seam: str) -> list[str]:
    """Each import of a non-public MLflow module or a `_private` MLflow name outside `seam`."""
    found = []
    for module, path in modules_of(root, packages).items():
        if _inside(module, seam):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                pairs = [(alias.name, alias.name.rpartition(".")[2]) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                pairs = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for base, name in pairs:
                if _inside(base, "mlflow") and (base not in MLFLOW_PUBLIC or name[0] == "_"):
                    found.append(f"{module}:{node.lineno} {base}.{name}")
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def mlflow_sql(root: Path, packages: tuple[str, ...], seam: str, tables: set[str]) -> list[str]:
    """Each string outside `seam` (docstrings aside) that spells SQL over one of `tables`."""
    sql = re.compile(rf"(?i)\b(?:from|join|into|update|table)\s+(?:{'|'.join(sorted(tables))})\b")
    found = []
    for module, path in modules_of(root, packages).items():
        if _inside(module, seam):
            continue
        tree = ast.parse(path.read_text(), str(path))
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in prose and sql.search(text):
                found.append(f"{module}:{node.lineno} {text!r}")
    return found


def imports_beside(
    graph: dict[str, set[str]], path: tuple[str, ...], beside: tuple[str, ...]
) -> list[str]:
    """Each import of a module `beside` the request's way by one on it, "importer → imported"."""
    return sorted(
        f"{module} → {target}"
        for module, targets in graph.items()
        if _inside(module, path)
        for target in targets
        if _inside(target, beside)
    )


def mlflow_tables() -> set[str]:
    """The tables of the installed MLflow's tracking and registry schema."""
    import mlflow.store.model_registry.dbmodels.models  # noqa: F401 - registers its tables
    import mlflow.store.tracking.dbmodels.models  # noqa: F401
    import mlflow.store.workspace.dbmodels.models  # noqa: F401
    from mlflow.store.db.base_sql_model import Base

    return set(Base.metadata.tables)


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

    def test_it_reaches_into_mlflow_only_through_the_seam(self):
        assert mlflow_internals(ROOT, LAYERS, SEAM) == []

    def test_it_spells_sql_over_mlflows_tables_only_in_the_seam(self):
        assert mlflow_sql(ROOT, LAYERS, SEAM, mlflow_tables()) == []

    def test_its_request_path_never_imports_the_operations_beside_it(self):
        graph = import_graph(ROOT, LAYERS, strings=True)

        assert imports_beside(graph, REQUEST_PATH, BESIDE_THE_REQUEST) == []

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

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("from mlflow.server.handlers import get_service_endpoints\n",
                         id="non-public-module"),
            pytest.param("def f():\n    import mlflow.store.db.utils\n", id="import-in-a-function"),
            pytest.param("from mlflow.exceptions import _private\n", id="private-name"),
        ],
    )  # fmt: skip
    def test_it_finds_mlflow_internals_outside_the_seam(self, house, text):
        plant(house, {"edge/rules.py": text})

        assert len(mlflow_internals(house, FAKE_LAYERS, "edge.seam")) == 1

    def test_it_lets_the_seam_reach_into_mlflow_and_others_use_its_public_api(self, house):
        plant(house, {"edge/seam/__init__.py": "", "edge/seam/app.py": "import mlflow.server\n"})
        plant(house, {"edge/rules.py": "from mlflow.exceptions import MlflowException\n"})

        assert mlflow_internals(house, FAKE_LAYERS, "edge.seam") == []

    def test_it_finds_sql_over_mlflows_tables_outside_the_seam(self, house):
        plant(house, {"edge/rules.py": '"""Read from runs."""\nQ = "SELECT * FROM runs r"\n'})

        assert mlflow_sql(house, FAKE_LAYERS, "edge.seam", {"runs"}) == [
            "edge.rules:2 'SELECT * FROM runs r'"
        ]

    def test_it_finds_the_request_path_importing_operations(self, house):
        plant(house, {"edge/ops/__init__.py": "", "edge/ops/usage.py": "import re\n"})
        plant(house, {"edge/views.py": "def f():\n    from edge.ops import usage\n"})
        graph = import_graph(house, FAKE_LAYERS)

        assert imports_beside(graph, ("edge.views",), ("edge.ops",)) == [
            "edge.views → edge.ops.usage"
        ]
