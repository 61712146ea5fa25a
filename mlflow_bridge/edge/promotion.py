"""Protected model aliases: what a registry write would promote, and who may.

PROTECTED_MODEL_ALIASES names aliases (or globs, case-insensitive) that only Maintainers and
Owners may set, move or delete, or a CI job whose id_token says its ref is protected and whose
user is at least a Developer: GitLab's protected branches, applied to promotion. Deleting the
version or the registered model holding such an alias is guarded alike, and so is moving a
version to the Production stage. The route table says which rows may touch one
(`Route.promotes`); CanPromoteModels (permissions.py) decides once the body is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from django.conf import settings

from mlflow_bridge.edge.routes import Promotes
from mlflow_bridge.embedded import registry
from projects.models import AccessLevel
from projects.records import Credential, ProjectAccess

PRODUCTION = "production"  # MLflow's stage names are case-insensitive
WHO_MAY = (
    "only Maintainers and Owners may, or a CI job on a protected branch or tag (its id_token's "
    "ref_protected) whose user is a Developer or higher"
)


@dataclass(frozen=True)
class Promotion:
    """What a request would change that is protected: alias names, or the Production stage."""

    aliases: tuple[str, ...] = ()
    production: bool = False

    @property
    def protected(self) -> bool:
        return bool(self.aliases) or self.production

    def describe(self) -> str:
        if self.production:
            return "The Production stage (PROTECTED_MODEL_ALIASES is set):"
        names = ", ".join(repr(alias) for alias in self.aliases)
        return f"Protected model alias {names} (PROTECTED_MODEL_ALIASES):"


def is_protected(alias: object) -> bool:
    return isinstance(alias, str) and any(
        fnmatchcase(alias.lower(), pattern.lower()) for pattern in settings.PROTECTED_MODEL_ALIASES
    )


def promotion(promotes: Promotes, document: dict, workspace: str) -> Promotion:
    """What a request of a row that `promotes` would change that is protected."""
    if not settings.PROTECTED_MODEL_ALIASES:
        return Promotion()  # off, the Production stage included
    if promotes is Promotes.STAGE:
        stage = document.get("stage")
        return Promotion(production=isinstance(stage, str) and stage.lower() == PRODUCTION)
    if promotes is Promotes.ALIAS:
        touched = [document.get("alias")]
    else:
        version = document.get("version") if promotes is Promotes.VERSION_ALIASES else None
        touched = registry.aliases_held(document.get("name"), version, workspace)
    return Promotion(aliases=tuple(alias for alias in touched if is_protected(alias)))


def may_promote(project_access: ProjectAccess, credential: Credential | None) -> bool:
    """Maintainer or more; or a CI id_token job on a protected ref, Developer or more."""
    if project_access.level >= AccessLevel.MAINTAINER:
        return True
    id_token = getattr(credential, "id_token", None)
    return id_token is not None and id_token.ref_protected and project_access.can_write
