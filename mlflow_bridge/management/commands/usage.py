"""`python manage.py usage`: what each project holds, measured now or as last measured."""

import csv
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mlflow_bridge.operations import usage
from projects.units import human


class Command(BaseCommand):
    help = (
        "Measure every project's MLflow objects and artifact bytes, store the figures for the "
        "admin and the quota, and print them largest first (--cached: print the stored ones)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
        parser.add_argument(
            "--cached", action="store_true", help="Print the stored figures; measure nothing."
        )

    def handle(self, *args, **options):
        try:
            rows = usage.report(None if options["cached"] else usage.measure())
        except OSError as exc:
            raise CommandError(f"The artifact store cannot be listed ({exc}): check "
                               "MLFLOW_ARTIFACTS_DESTINATION and its credentials.")  # fmt: skip
        if options["format"] == "json":
            self.stdout.write(json.dumps(rows, default=str, indent=2))
        elif options["format"] == "csv":
            writer = csv.DictWriter(self.stdout, fieldnames=usage.COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        else:
            self._table(rows)

    def _table(self, rows: list[dict]) -> None:
        self.stdout.write(
            f"{'project':>8}  {'path':<40} {'experiments':>11} {'runs':>7} {'reg. models':>11} "
            f"{'logged models':>13} {'traces':>7} {'artifacts':>10}  last activity"
        )
        for row in rows:
            last = row["last_activity"]
            last = last.isoformat(timespec="minutes") if last else "-"
            path = row["path"] + (" (orphaned)" if row["orphaned_at"] else "")
            self.stdout.write(
                f"{row['project_id']:>8}  {path:<40} {row['experiments']:>11} {row['runs']:>7} "
                f"{row['registered_models']:>11} {row['logged_models']:>13} {row['traces']:>7} "
                f"{human(row['artifact_bytes']):>10}  {last}"
            )
        total = sum(row["artifact_bytes"] for row in rows)
        oldest = min((row["measured_at"] for row in rows), default=timezone.now())
        age = int((timezone.now() - oldest).total_seconds())
        projects = "1 project" if len(rows) == 1 else f"{len(rows)} projects"
        self.stdout.write(f"{projects}, {human(total)} of artifacts; "
                          f"figures measured {age} s ago at most.")  # fmt: skip
