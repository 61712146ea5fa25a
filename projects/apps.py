from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "GitLab projects and memberships"

    def ready(self) -> None:
        from projects import checks  # noqa: F401 - registers the system checks
