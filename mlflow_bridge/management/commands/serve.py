"""`python manage.py serve`: migrate both databases, then run gunicorn."""

import os
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mlflow_bridge import mlflow_app


class Command(BaseCommand):
    help = "Apply Django migrations and MLflow's database upgrade, then serve with gunicorn."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1:8000"))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "2")))
        parser.add_argument(
            "--timeout",
            type=int,
            default=int(os.environ.get("GUNICORN_TIMEOUT", "600")),
            help="Seconds a worker may spend on one request (large artifact transfers).",
        )

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        try:
            mlflow_app.upgrade_database()
        except Exception as exc:
            raise CommandError(
                f"MLflow's database could not be upgraded ({exc}). "
                "Check MLFLOW_BACKEND_STORE_URI and that the database is reachable."
            ) from exc
        argv = [
            sys.executable, "-m", "gunicorn", "sharinghub_mlflow.wsgi:application",
            "--bind", options["bind"],
            "--workers", str(options["workers"]),
            "--timeout", str(options["timeout"]),
            "--graceful-timeout", "30",
            "--access-logfile", "-",
        ]  # fmt: skip
        self.stdout.write(
            f"Serving on http://{options['bind']}/mlflow/ with {options['workers']} workers"
        )
        self.stdout.flush()
        os.execv(sys.executable, argv)
