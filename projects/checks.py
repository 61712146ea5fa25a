"""System checks of the settings that must agree with each other."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_gitlab_oauth(app_configs=None, **kwargs) -> list[Error]:
    """Browser login needs both halves of the GitLab OAuth application, or neither."""
    if bool(settings.GITLAB_OAUTH_CLIENT_ID) == bool(settings.GITLAB_OAUTH_CLIENT_SECRET):
        return []
    missing = (
        "GITLAB_OAUTH_CLIENT_SECRET"
        if settings.GITLAB_OAUTH_CLIENT_ID
        else ("GITLAB_OAUTH_CLIENT_ID")
    )
    return [
        Error(
            f"{missing} is not set, so browser login cannot work.",
            hint="Set both GITLAB_OAUTH_CLIENT_ID and GITLAB_OAUTH_CLIENT_SECRET from the GitLab "
            "application (Admin > Applications, scope read_api), or neither.",
            id="projects.E001",
        )
    ]


@register()
def check_cookie_samesite(app_configs=None, **kwargs) -> list[Error]:
    """Browsers drop a SameSite=None cookie that is not Secure: such a login would never stick."""
    if (
        settings.COOKIE_SAMESITE != "None"
        or settings.SECURE_SSL
        or settings.TRUST_X_FORWARDED_PROTO
    ):
        return []
    return [
        Error(
            "COOKIE_SAMESITE is None but the service is not served over HTTPS, so browsers "
            "would refuse its cookies and no login would stick.",
            hint="Serve the service over HTTPS (SECURE_SSL=true, or TRUST_X_FORWARDED_PROTO=true "
            "behind a TLS proxy), or set COOKIE_SAMESITE=Lax.",
            id="projects.E002",
        )
    ]
