"""`python manage.py gitlab_prune`: delete cached GitLab answers nothing can use any more."""

from django.core.management.base import BaseCommand

from projects import membership_cache


class Command(BaseCommand):
    help = (
        "Delete expired memberships and token fingerprints older than GITLAB_OUTAGE_GRACE "
        "(expired negative answers at once), CI jobs without tokens, and webhook keys older "
        "than a week."
    )

    def handle(self, *args, **options):
        deleted = membership_cache.prune()
        counts = ", ".join(f"{count} {kind}" for kind, count in deleted.items())
        self.stdout.write(f"Deleted {counts}.")
