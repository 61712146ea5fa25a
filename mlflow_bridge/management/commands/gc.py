"""`python manage.py gc`: MLflow's garbage collection, one project's workspace at a time."""

from django.core.management.base import BaseCommand, CommandError
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from mlflow_bridge.operations import collect, usage
from projects.models import GitLabProject
from projects.units import age, human


class Command(BaseCommand):
    help = (
        "Permanently delete soft-deleted runs, logged models and experiments, with their "
        "artifacts, in one project (--project) or in each project separately."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", help="GitLab project path or id; default: every one")
        parser.add_argument(
            "--older-than",
            default="0s",
            help="Only what was deleted at least this long ago: an age like 30d, 12h, 1d12h, "
            "90m or 0s (default: 0s, everything deleted).",
        )
        parser.add_argument("--dry-run", action="store_true", help="List; delete nothing.")

    def handle(self, *args, **options):
        try:
            older_than = age(options["older_than"])
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}.")
        workspaces = [self._workspace(options["project"])] if options["project"] else None
        verb = "Would free" if options["dry_run"] else "Freed"
        runs = size = 0
        for workspace in workspaces or usage.workspaces():
            try:
                done = collect.collect(workspace, older_than, dry_run=options["dry_run"])
            except (OSError, MlflowException, SQLAlchemyError) as exc:
                raise CommandError(f"{workspace}: {exc}. Check that MLflow's database and the "
                                   "artifact store are reachable, then run gc again.")  # fmt: skip
            if done.runs or done.logged_models or done.experiments or done.abandoned_uploads:
                self.stdout.write(
                    f"{verb} {workspace}: runs {', '.join(done.runs) or '-'}; logged models "
                    f"{', '.join(done.logged_models) or '-'}; experiments "
                    f"{', '.join(done.experiments) or '-'}; abandoned uploads "
                    f"{done.abandoned_uploads}; {done.artifact_files} artifact "
                    f"files ({human(done.artifact_bytes)})"
                )
            runs, size = runs + len(done.runs), size + done.artifact_bytes
        self.stdout.write(f"{verb} {runs} runs and {human(size)} of artifacts.")

    def _workspace(self, project: str) -> str:
        lookup = {"id": int(project)} if project.isdecimal() else {"path": project.strip("/")}
        found = GitLabProject.objects.filter(**lookup).first()
        if found is None:
            raise CommandError(
                f"No project {project!r} has been served here: give the path or id GitLab "
                "shows (`usage` lists the projects with data)."
            )
        return found.workspace
