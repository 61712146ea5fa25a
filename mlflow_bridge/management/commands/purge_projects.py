"""`python manage.py purge_projects --orphaned-for 30d`: delete what deleted projects left."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from mlflow_bridge.operations import purge
from projects.models import GitLabProject
from projects.units import age, human


class Command(BaseCommand):
    help = (
        "Delete the MLflow data (every row of the project's workspace) and the artifacts of "
        "projects GitLab deleted at least --orphaned-for ago; nothing of any other project."
    )

    def add_arguments(self, parser):
        parser.add_argument("--orphaned-for", required=True, help="e.g. 30d, 12h, 1d12h")
        parser.add_argument("--dry-run", action="store_true", help="List; delete nothing.")

    def handle(self, *args, **options):
        try:
            since = timezone.now() - age(options["orphaned_for"])
        except ValueError as exc:
            raise CommandError(f"--orphaned-for: {exc}.")
        projects = GitLabProject.objects.filter(orphaned_at__lte=since).order_by("id")
        verb = "Would delete" if options["dry_run"] else "Deleted"
        rows = files = size = 0
        for project in projects:
            try:
                found = (purge.inventory if options["dry_run"] else purge.purge)(project.workspace)
            except (OSError, RuntimeError, MlflowException, SQLAlchemyError) as exc:
                raise CommandError(
                    f"{project.workspace} ({project.path}): {exc}. Check that MLflow's database "
                    "and the artifact store are reachable, then run the command again."
                )
            listed = ", ".join(f"{count} {table}" for table, count in sorted(found.rows.items()))
            self.stdout.write(
                f"{verb} {project.workspace} ({project.path}, orphaned "
                f"{project.orphaned_at:%Y-%m-%d}): {listed or 'no rows'}; "
                f"{found.artifact_files} artifact files ({human(found.artifact_bytes)})"
            )
            rows += sum(found.rows.values())
            files, size = files + found.artifact_files, size + found.artifact_bytes
            if not options["dry_run"]:
                project.delete()  # its memberships and usage row go with it
        self.stdout.write(f"{verb} {len(projects)} orphaned projects: {rows} rows, {files} "
                          f"artifact files ({human(size)}).")  # fmt: skip
