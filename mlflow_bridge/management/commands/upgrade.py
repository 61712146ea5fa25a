"""`python manage.py upgrade`: both databases' migrations, without serving (Kubernetes' Job)."""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from mlflow_bridge.embedded import mlflow_app


def pending() -> list[str]:
    """What is not applied yet: Django migrations by name, and MLflow's schema if behind."""
    executor = MigrationExecutor(connections["default"])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    found = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
    if not mlflow_app.schema_is_current():
        found.append("MLflow's database schema")
    return found


class Command(BaseCommand):
    help = (
        "Apply Django's migrations and MLflow's database upgrade, then exit (the migration "
        "step of a release); --check only fails while either is pending."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Change nothing.")

    def handle(self, *args, **options):
        if options["check"]:
            if waiting := pending():
                shown = ", ".join(waiting[:3]) + (", ..." if len(waiting) > 3 else "")
                raise CommandError(
                    f"{len(waiting)} migrations not applied yet ({shown}): run "
                    "`python manage.py upgrade` (the release's migration Job)."
                )
            self.stdout.write("Both databases are up to date.")
            return
        call_command("migrate", interactive=False, verbosity=0)
        try:
            mlflow_app.upgrade_database()
        except Exception as exc:
            raise CommandError(
                f"MLflow's database could not be upgraded ({exc}). "
                "Check MLFLOW_BACKEND_STORE_URI and that the database is reachable."
            ) from exc
        self.stdout.write("Django's migrations and MLflow's database upgrade are applied.")
