from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "GitLab projects and memberships"

    def ready(self) -> None:
        from django.db.models import signals
        from social_django.models import UserSocialAuth

        from projects import (
            checks,  # noqa: F401 - registers the system checks
            sealing,
        )

        # OAuth tokens are sealed in the database and plain in memory (projects/sealing.py).
        signals.pre_save.connect(sealing.seal_before_save, sender=UserSocialAuth)
        signals.post_save.connect(sealing.open_after_load, sender=UserSocialAuth)
        signals.post_init.connect(sealing.open_after_load, sender=UserSocialAuth)
