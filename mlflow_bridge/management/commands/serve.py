"""`python manage.py serve`: migrate both databases, print the configuration, run gunicorn."""

import io
import os
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mlflow_bridge.embedded import serving
from mlflow_bridge.operations import preflight
from projects import gitlab


class Command(BaseCommand):
    help = "Apply Django migrations and MLflow's database upgrade, then serve with gunicorn."

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default=settings.SERVE_BIND,
            help="Address and port to listen on, e.g. 0.0.0.0:8000 (default: SERVE_BIND, "
            "%(default)s).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.SERVE_WORKERS,
            help="gunicorn worker processes (default: SERVE_WORKERS, %(default)s).",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.SERVE_THREADS,
            help="Threads per worker; above 1, gunicorn's gthread worker (default: "
            "SERVE_THREADS, %(default)s).",
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=settings.SERVE_TIMEOUT,
            help="Seconds a worker may stay silent before it is replaced (with --threads 1: "
            "the longest one request may take, large artifact transfers included).",
        )
        parser.add_argument(
            "--graceful-timeout",
            type=int,
            default=settings.SERVE_GRACEFUL_TIMEOUT,
            help="Seconds a stopping worker may finish its requests before it is killed "
            "(default: SERVE_GRACEFUL_TIMEOUT, %(default)s).",
        )

    def handle(self, *args, **options):
        # Without its databases or artifact store the service cannot work: refuse to start.
        if problems := preflight.fatal_problems():
            raise CommandError("Cannot serve:\n  " + "\n  ".join(problems))
        # Django's migrations and MLflow's database upgrade (`upgrade` says so on success).
        call_command("upgrade", stdout=io.StringIO())
        # The admin's CSS and scripts, served by WhiteNoise from STATIC_ROOT.
        call_command("collectstatic", interactive=False, verbosity=0)
        serving.prepare_metrics_directory()
        for name, value in serving.effective_configuration(options):
            self.stdout.write(f"  {name:<24} {value}")
        if problem := gitlab.unreachable_reason():
            self.stderr.write(
                f"WARNING: GitLab at {settings.GITLAB_URL} {problem}. Until it answers, nobody "
                "can log in or be checked (503, then 424 after GITLAB_OUTAGE_RETRYABLE): "
                "check GITLAB_URL and this host's network."
            )
        self.stdout.write(
            f"Serving on http://{options['bind']}/mlflow/ with {options['workers']} workers"
        )
        self.stdout.flush()
        os.execv(sys.executable, serving.gunicorn_argv(options))
