"""Admin views of what the service believes GitLab said (staff only, read-mostly)."""

from django.contrib import admin

from projects.models import AccessLevel, GitLabProject, GitLabUser, Membership, TokenFingerprint


@admin.register(GitLabProject)
class GitLabProjectAdmin(admin.ModelAdmin):
    list_display = ("id", "path", "visibility", "archived", "last_seen")
    search_fields = ("path", "name")
    list_filter = ("visibility", "archived")


@admin.register(GitLabUser)
class GitLabUserAdmin(admin.ModelAdmin):
    list_display = ("id", "username", "bot", "last_seen")
    search_fields = ("username",)
    list_filter = ("bot",)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role", "fetched_at", "expires_at")
    search_fields = ("user__username", "project__path")
    list_filter = ("access_level",)
    list_select_related = ("user", "project")

    @admin.display(description="role", ordering="access_level")
    def role(self, membership: Membership) -> str:
        return AccessLevel.name_of(membership.access_level)


@admin.register(TokenFingerprint)
class TokenFingerprintAdmin(admin.ModelAdmin):
    list_display = ("short_digest", "user", "expires_at")
    search_fields = ("user__username",)
    # The digest is a SHA-256 of the token, never the token: safe to show, useless to steal.
    readonly_fields = ("digest", "user", "expires_at")

    @admin.display(description="token SHA-256")
    def short_digest(self, fingerprint: TokenFingerprint) -> str:
        return fingerprint.digest[:12] + "…"
