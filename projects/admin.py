"""Admin views of what the service believes GitLab said (Django staff only).

Every row here mirrors GitLab (or records a webhook delivery), so the pages are read-only:
no add, edit or delete form. Lists are searchable and filterable; the actions "Refresh from
GitLab now" (needs GITLAB_SERVICE_TOKEN) and "Invalidate" (the next request asks GitLab) act
on the selection. The service's own data (Django's users and groups) stays editable.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from social_django.models import Association, Nonce, UserSocialAuth

from projects import gitlab, membership_cache
from projects.models import (
    AccessLevel,
    CIJob,
    GitLabProject,
    GitLabUser,
    Membership,
    ProjectUsage,
    TokenFingerprint,
    WebhookDelivery,
)
from projects.units import human

admin.site.site_header = "SharingHub MLflow administration"
admin.site.site_title = "SharingHub MLflow admin"
admin.site.index_title = "What the service knows of GitLab, and its own users"


def _refresh(modeladmin, request, memberships, projects=None) -> None:
    try:
        summary = membership_cache.refresh(memberships, projects)
    except membership_cache.ServiceTokenMissing as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
    except gitlab.TokenRejected as exc:
        modeladmin.message_user(
            request, f"GitLab refuses GITLAB_SERVICE_TOKEN ({exc}): renew it.", messages.ERROR
        )
    except gitlab.GitLabUnavailable as exc:
        modeladmin.message_user(request, f"{exc}; try again later.", messages.ERROR)
    else:
        modeladmin.message_user(request, f"{summary}.", messages.SUCCESS)


def _invalidated(modeladmin, request, count: int, what: str) -> None:
    modeladmin.message_user(
        request, f"{count} {what} forgotten: the next request asks GitLab.", messages.SUCCESS
    )


class MirrorAdmin(admin.ModelAdmin):
    """Allows viewing only: what GitLab said is changed in GitLab, then refreshed here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ExpiredFilter(admin.SimpleListFilter):
    title = "expired"
    parameter_name = "expired"

    def lookups(self, request, model_admin):
        return [("yes", "Expired"), ("no", "Fresh")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(expires_at__lte=timezone.now())
        if self.value() == "no":
            return queryset.filter(expires_at__gt=timezone.now())
        return queryset


class OrphanedFilter(admin.SimpleListFilter):
    title = "deleted in GitLab"
    parameter_name = "orphaned"

    def lookups(self, request, model_admin):
        return [("yes", "Orphaned"), ("no", "In GitLab")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(orphaned_at__isnull=self.value() == "no")
        return queryset


@admin.register(GitLabProject)
class GitLabProjectAdmin(MirrorAdmin):
    """Projects with their usage as `python manage.py usage` last measured it (never measured
    here: a page view reads one row per project), sortable by size and by activity."""

    list_display = ("id", "path", "archived", "orphaned_at", "artifacts", "runs",
                    "experiments", "registered_models", "last_activity", "measured")  # fmt: skip
    list_select_related = ("usage",)
    search_fields = ("path", "name")
    list_filter = ("visibility", "archived", OrphanedFilter)
    actions = ["refresh_from_gitlab", "invalidate"]
    fields = readonly_fields = ("id", "path", "in_gitlab", "visibility", "archived", "topics",
                                "orphaned_at", "usage_summary", "members")  # fmt: skip

    @admin.display(description="GitLab")
    def in_gitlab(self, project: GitLabProject) -> str:
        url = project.web_url or f"{settings.GITLAB_URL}/{project.path}"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    @admin.display(description="usage")
    def usage_summary(self, project: GitLabProject) -> str:
        usage = self._usage(project)
        if usage is None:
            return "never measured (python manage.py usage)"
        return (f"{usage.experiments} experiments, {usage.runs} runs, "
                f"{usage.registered_models} registered models, {human(usage.artifact_bytes)} "
                f"of artifacts; measured {timesince(usage.measured_at)} ago")  # fmt: skip

    @admin.display(description="members (cached)")
    def members(self, project: GitLabProject) -> str:
        rows = Membership.objects.filter(project=project).select_related("user")
        return format_html_join(
            format_html("<br>"), "{} — {}{}",
            ((m.user.username, AccessLevel.name_of(m.access_level),
              "" if m.is_fresh else " (expired)") for m in rows.order_by("user__username")),
        ) or "none cached"  # fmt: skip

    def _usage(self, project: GitLabProject) -> ProjectUsage | None:
        try:
            return project.usage
        except ProjectUsage.DoesNotExist:
            return None

    @admin.display(description="artifacts", ordering="usage__artifact_bytes")
    def artifacts(self, project: GitLabProject) -> str:
        usage = self._usage(project)
        return human(usage.artifact_bytes) if usage else "-"

    @admin.display(description="runs", ordering="usage__runs")
    def runs(self, project: GitLabProject) -> int | str:
        return self._usage(project).runs if self._usage(project) else "-"

    @admin.display(description="experiments", ordering="usage__experiments")
    def experiments(self, project: GitLabProject) -> int | str:
        return self._usage(project).experiments if self._usage(project) else "-"

    @admin.display(description="models", ordering="usage__registered_models")
    def registered_models(self, project: GitLabProject) -> int | str:
        return self._usage(project).registered_models if self._usage(project) else "-"

    @admin.display(description="last activity", ordering="usage__last_activity")
    def last_activity(self, project: GitLabProject):
        usage = self._usage(project)
        return usage.last_activity if usage else None

    @admin.display(description="measured", ordering="usage__measured_at")
    def measured(self, project: GitLabProject) -> str:
        usage = self._usage(project)
        return f"{timesince(usage.measured_at)} ago" if usage else "never (run usage)"

    @admin.action(description="Refresh from GitLab now (project and its memberships)")
    def refresh_from_gitlab(self, request, queryset):
        _refresh(self, request, Membership.objects.filter(project__in=queryset), queryset)

    @admin.action(description="Invalidate the cached memberships of these projects")
    def invalidate(self, request, queryset):
        count = membership_cache.invalidate(Membership.objects.filter(project__in=queryset))
        _invalidated(self, request, count, "memberships")


@admin.register(GitLabUser)
class GitLabUserAdmin(MirrorAdmin):
    list_display = ("id", "username", "bot", "last_seen")
    search_fields = ("username",)
    list_filter = ("bot",)
    actions = ["refresh_from_gitlab", "invalidate"]

    @admin.action(description="Refresh from GitLab now (memberships of these users)")
    def refresh_from_gitlab(self, request, queryset):
        _refresh(self, request, Membership.objects.filter(user__in=queryset))

    @admin.action(description="Invalidate the cached memberships and tokens of these users")
    def invalidate(self, request, queryset):
        count = membership_cache.invalidate(Membership.objects.filter(user__in=queryset))
        count += membership_cache.invalidate_tokens(
            TokenFingerprint.objects.filter(user__in=queryset)
        )
        _invalidated(self, request, count, "memberships and token fingerprints")


@admin.register(Membership)
class MembershipAdmin(MirrorAdmin):
    list_display = ("user", "project", "role", "source", "fetched_at", "expires_at", "fresh")
    search_fields = ("user__username", "project__path")
    list_filter = (
        ("access_level", admin.ChoicesFieldListFilter),
        ExpiredFilter,
        "source",
        ("project", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("user", "project")
    actions = ["refresh_from_gitlab", "invalidate"]

    @admin.display(description="role", ordering="access_level")
    def role(self, membership: Membership) -> str:
        return AccessLevel.name_of(membership.access_level)

    @admin.display(description="fresh", boolean=True)
    def fresh(self, membership: Membership) -> bool:
        return membership.is_fresh

    @admin.action(description="Refresh from GitLab now")
    def refresh_from_gitlab(self, request, queryset):
        _refresh(self, request, queryset)

    @admin.action(description="Invalidate (the next request asks GitLab)")
    def invalidate(self, request, queryset):
        _invalidated(self, request, membership_cache.invalidate(queryset), "memberships")


@admin.register(TokenFingerprint)
class TokenFingerprintAdmin(MirrorAdmin):
    list_display = ("short_digest", "user", "job", "fetched_at", "expires_at")
    search_fields = ("user__username",)
    list_filter = (ExpiredFilter,)
    list_select_related = ("user", "job")
    # The digest is a SHA-256 of the token, never the token: safe to show, useless to steal.
    readonly_fields = ("digest", "user", "job", "fetched_at", "expires_at")
    actions = ["invalidate"]

    @admin.display(description="token SHA-256")
    def short_digest(self, fingerprint: TokenFingerprint) -> str:
        return fingerprint.digest[:12] + "…"

    @admin.action(description="Invalidate (the next request asks GitLab who this is)")
    def invalidate(self, request, queryset):
        _invalidated(
            self, request, membership_cache.invalidate_tokens(queryset), "token fingerprints"
        )


@admin.register(CIJob)
class CIJobAdmin(MirrorAdmin):
    list_display = ("id", "project_id", "pipeline_id", "user", "web_url")
    search_fields = ("user__username", "web_url")
    readonly_fields = ("id", "project_id", "pipeline_id", "user", "web_url")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(MirrorAdmin):
    list_display = ("key", "event", "received_at")
    search_fields = ("key", "event")
    list_filter = ("event",)
    readonly_fields = ("key", "event", "received_at")


# social-auth's own admin shows and edits `extra_data`, the login's GitLab tokens: replaced by
# a read-only list without it. Nonce and Association are OpenID's, unused with GitLab.
for _model in (UserSocialAuth, Nonce, Association):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(UserSocialAuth)
class GitLabLoginAdmin(MirrorAdmin):
    """Who logged in with GitLab, and when: never the tokens (they are the user's secrets)."""

    list_display = ("user", "provider", "uid", "created", "modified")
    search_fields = ("user__username", "uid")
    list_select_related = ("user",)
    fields = readonly_fields = ("user", "provider", "uid", "created", "modified")
