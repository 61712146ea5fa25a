"""Which rows of MLflow's database belong to a workspace, read from MLflow's own schema.

A row belongs when its table has a `workspace` column naming it, or when a foreign key leads
to a row that belongs. A few tables link by id without a foreign key (dataset inputs, entity
associations, daily rollups): they are named here. Deleting is MLflow's own CASCADE of the
workspace store, after the rows it cannot reach by relationship are deleted here, then what
the cascade did not reach (the registry's rows, when in a database of its own).
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table, func, or_, select, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from mlflow_bridge.embedded import mlflow_app

# Tables MLflow keeps for itself, not for a workspace.
NOT_WORKSPACE_DATA = frozenset({"alembic_version", "scheduler_leases"})
# Linked to a workspace's objects by id, without a foreign key MLflow's cascade could follow.
UNLINKED = ("entity_associations", "input_tags", "inputs")


class _Schema:
    """MLflow's tables in one database, and which of their rows belong to a workspace."""

    def __init__(self, engine: Engine, workspace: str):
        self.metadata = MetaData()
        self.metadata.reflect(engine)
        self.workspace = workspace
        self._found: dict[str, ColumnElement | None] = {}
        # Tables whose rows are found without a foreign key: MLflow's cascade misses them.
        self.unlinked: list[str] = []

    def table(self, name: str) -> Table | None:
        return self.metadata.tables.get(name)

    def ids(self, name: str, column: str):
        table = self.table(name)
        condition = self.belongs(name)
        if table is None or condition is None:
            return None
        return select(table.c[column]).where(condition)

    def belongs(self, name: str, seen: frozenset[str] = frozenset()) -> ColumnElement | None:
        """The condition selecting the workspace's rows of a table, or None for none."""
        if name not in self._found:
            self._found[name] = self._condition(name, seen | {name})
        return self._found[name]

    def _condition(self, name: str, seen: frozenset[str]) -> ColumnElement | None:
        table = self.table(name)
        if table is None or name in NOT_WORKSPACE_DATA:
            return None
        if name == "workspaces":
            return table.c.name == self.workspace
        if "workspace" in table.c:
            return table.c.workspace == self.workspace
        if name in UNLINKED:
            self.unlinked.append(name)
            return self._unlinked(name, table)
        for key in table.foreign_key_constraints:
            parent = key.referred_table.name
            if parent in seen or (condition := self.belongs(parent, seen)) is None:
                continue
            columns = [element.parent for element in key.elements]
            referred = [element.column for element in key.elements]
            parents = select(*referred).where(condition)
            if len(columns) == 1:
                return columns[0].in_(parents)
            return tuple_(*columns).in_(parents)
        if "experiment_id" in table.c:  # MLflow's daily rollups: keyed by experiment only
            self.unlinked.append(name)
            return table.c.experiment_id.in_(self.ids("experiments", "experiment_id"))
        return None

    def _unlinked(self, name: str, table: Table) -> ColumnElement | None:
        if name == "input_tags":
            return table.c.input_uuid.in_(self.ids("inputs", "input_uuid"))
        sources = [
            self.ids("runs", "run_uuid"),
            self.ids("datasets", "dataset_uuid"),
            self.ids("logged_models", "model_id"),
            self.ids("trace_info", "request_id"),
            self.ids("evaluation_datasets", "dataset_id"),
        ]
        sources = [ids for ids in sources if ids is not None]
        return or_(
            *(table.c.source_id.in_(ids) for ids in sources),
            *(table.c.destination_id.in_(ids) for ids in sources),
        )


def counts(workspace: str) -> dict[str, int]:
    """The workspace's rows by table (tables without any left out); touches nothing."""
    found: dict[str, int] = {}
    for engine in mlflow_app.engines():
        schema = _Schema(engine, workspace)
        with engine.connect() as connection:
            for name in sorted(schema.metadata.tables):
                condition = schema.belongs(name)
                if condition is None:
                    continue
                query = select(func.count()).select_from(schema.table(name)).where(condition)
                if count := connection.execute(query).scalar_one():
                    found[name] = found.get(name, 0) + count
    return found


def delete(workspace: str) -> None:
    """Delete every row of the workspace, in every database of MLflow's."""
    for engine in mlflow_app.engines():
        schema = _Schema(engine, workspace)
        conditions = {name: schema.belongs(name) for name in schema.metadata.tables}
        with engine.begin() as connection:
            # Found through their relations to the rows the cascade deletes: delete them first,
            # input_tags before the inputs its condition reads.
            for name in sorted(schema.unlinked, key=lambda name: name != "input_tags"):
                connection.execute(schema.table(name).delete().where(conditions[name]))
    mlflow_app.delete_workspace(workspace)
    _delete_leftovers(workspace)


def _delete_leftovers(workspace: str) -> None:
    """Rows MLflow's cascade did not reach: the registry's, when in its own database."""
    for engine in mlflow_app.engines():
        schema = _Schema(engine, workspace)
        with engine.begin() as connection:
            for table in reversed(schema.metadata.sorted_tables):
                condition = schema.belongs(table.name)
                if condition is not None:
                    connection.execute(table.delete().where(condition))
