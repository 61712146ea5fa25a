"""Who may read a project's ML features: GitLab's rule (project_policy.rb, read_model_experiments
and read_model_registry), from the project's visibility and the feature's access level.

| visibility / feature level | anyone (signed in or not) | member (Guest+) |
|---|---|---|
| any / disabled             | no                        | no              |
| public / enabled           | read                      | read            |
| public / private           | no                        | read            |
| internal or private / any  | no                        | read            |

Writing stays Developer+ members only (ProjectAccess.can_write); a feature switched off is off
for them too. MEMBERS_ONLY=true keeps non-members out whatever GitLab says.
"""

from __future__ import annotations

from django.conf import settings

from projects.models import READ_LEVEL, GitLabProject

DISABLED, PRIVATE, ENABLED = "disabled", "private", "enabled"
# Route areas (mlflow_bridge/routes.Area values) -> the features they read.
FEATURES = {
    "model_experiments": ("model_experiments",),
    "model_registry": ("model_registry",),
    "both": ("model_experiments", "model_registry"),
}


def feature_level(project: GitLabProject, feature: str) -> str:
    return getattr(project, f"{feature}_access_level")


def may_read_feature(project: GitLabProject, level: int, feature: str) -> bool:
    """GitLab's read_<feature> for a caller of `level` (0: no member, or anonymous)."""
    feature_access = feature_level(project, feature)
    if feature_access == DISABLED:
        return False
    if level >= READ_LEVEL:
        return True
    return feature_access == ENABLED and is_open_to_everyone(project)


def is_open_to_everyone(project: GitLabProject) -> bool:
    return project.visibility == "public" and not settings.MEMBERS_ONLY


def may_read(project: GitLabProject, level: int, area: str = "site") -> bool:
    """Whether a caller of `level` reads what a route of `area` shows; "site" (the UI's page and
    files): where either feature is readable."""
    if area == "site":
        return any(may_read_feature(project, level, f) for f in FEATURES["both"])
    return all(may_read_feature(project, level, f) for f in FEATURES[area])


def is_public_read(project: GitLabProject, level: int) -> bool:
    """Whether the caller reads only because the project is public (no member): the UI's bar
    says so and offers to sign in."""
    return level < READ_LEVEL and may_read(project, level)


def anonymous_reads() -> bool:
    """Anonymous visitors may read public projects: GitLab tells their feature levels only to
    a signed-in caller, so this takes GITLAB_SERVICE_TOKEN; without it they are asked to sign in."""
    return bool(settings.GITLAB_SERVICE_TOKEN) and not settings.MEMBERS_ONLY
