"""`python manage.py gitlab_refresh`: ask GitLab again for every cached membership in use."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from projects import gitlab, membership_cache
from projects.models import AccessLevel, GitLabProject, Membership


class Command(BaseCommand):
    help = (
        "Refresh every membership that has not expired and every known project from GitLab, "
        "with GITLAB_SERVICE_TOKEN, at a bounded rate; a project GitLab no longer has is "
        "orphaned, an orphaned one GitLab has again is restored."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--per-second",
            type=float,
            default=5.0,
            help="At most this many projects or memberships a second; a membership costs one "
            "to three GitLab calls, a project one.",
        )

    def handle(self, *args, **options):
        if not settings.GITLAB_SERVICE_TOKEN:
            raise CommandError(
                "Set GITLAB_SERVICE_TOKEN to an administrator's GitLab token with read_api: "
                "the service keeps no user's token to ask with."
            )
        if options["per_second"] <= 0:
            raise CommandError("--per-second must be positive.")
        memberships = Membership.objects.filter(expires_at__gt=timezone.now())
        total = memberships.count()
        done = []

        def progress(membership: Membership) -> None:
            done.append(membership)
            role = AccessLevel.name_of(membership.access_level)
            self.stdout.write(
                f"[{len(done)}/{total}] {membership.user} in {membership.project}: {role}"
            )

        try:
            summary = membership_cache.refresh(
                memberships,
                GitLabProject.objects.all(),
                pace=membership_cache.paced(options["per_second"]),
                progress=progress,
            )
        except gitlab.TokenRejected as exc:
            raise CommandError(f"GitLab refuses GITLAB_SERVICE_TOKEN ({exc}): renew it.")
        except gitlab.GitLabUnavailable as exc:
            raise CommandError(f"{exc} after {len(done)} of {total}: run the command again later.")
        self.stdout.write(f"{summary}.")
