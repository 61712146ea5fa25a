"""`python manage.py import_sharinghub`: move an mlflow-sharinghub database into workspaces."""

from django.core.management.base import BaseCommand, CommandError

from mlflow_bridge.embedded.sharinghub_import import ImportRefused, SharingHubImport


class Command(BaseCommand):
    help = (
        "Move experiments, runs, registered models and prompts of an mlflow-sharinghub "
        "database (names suffixed ' (<project id>)') into their projects' workspaces, with "
        "their artifacts. The source is only read; running it again adds only what is missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--backend-store-uri", required=True, help="The old MLflow database.")
        parser.add_argument(
            "--artifacts", required=True, help="The old server's --artifacts-destination."
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the plan only.")

    def handle(self, *args, **options):
        importer = SharingHubImport(options["backend_store_uri"], options["artifacts"])
        try:
            importer.check_schema()
            plan = importer.plan()
            for line in plan.lines():
                self.stdout.write(line)
            if options["dry_run"]:
                self.stdout.write("Dry run: nothing was written.")
                return
            for line in importer.run(plan):
                self.stdout.write(line)
        except ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Imported {len(plan.experiments)} experiment(s) and {len(plan.models)} registered "
            f"model(s) or prompt(s); {len(plan.unmapped)} not mapped."
        )
