"""Permission classes (Django REST framework's), composed per route by `permissions_for`.

Each answers `has_permission(request, view)` from what the tracking view learnt:
`request.project_access` (the caller's role in the project, None when the project does not
exist for them) and `request.route` (the route table's row, None until the route is known).
A "no" becomes an MLflow error with the class's `code` (TrackingView.permission_denied):
RESOURCE_DOES_NOT_EXIST (404) when the caller cannot read the project, so that a project
they cannot see and one that does not exist answer alike; PERMISSION_DENIED (403) otherwise.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from mlflow_bridge.edge.errors import not_found
from mlflow_bridge.edge.routes import Action, Route
from projects import access


class IsVisibleProject(BasePermission):
    """Allows access only to users with at least Guest level in a served project (one carrying
    every GITLAB_MANDATORY_TOPICS topic): access.is_visible, as the connect page asks it."""

    code = "RESOURCE_DOES_NOT_EXIST"
    message = not_found().message

    def has_permission(self, request, view) -> bool:
        return access.is_visible(request.project_access)


class IsServedRoute(BasePermission):
    """Allows access only to routes this service can keep inside one project."""

    code = "PERMISSION_DENIED"

    def has_permission(self, request, view) -> bool:
        if request.route.action is not Action.REFUSED:
            return True
        feature = request.route.feature
        self.message = (
            f"{feature[:1].upper()}{feature[1:]}: not available on this SharingHub MLflow server."
        )
        return False


class CanWriteProject(BasePermission):
    """Allows create, update and delete only to Developer or higher."""

    code = "PERMISSION_DENIED"

    def has_permission(self, request, view) -> bool:
        project_access = request.project_access
        if project_access.can_write:
            return True
        self.message = (
            f"Developer or higher can write to {project_access.project.path}; "
            f"you are {project_access.role}."
        )
        return False


class IsProjectNotArchived(BasePermission):
    """Allows create, update and delete only in projects GitLab has not archived."""

    code = "PERMISSION_DENIED"

    def has_permission(self, request, view) -> bool:
        project = request.project_access.project
        if not project.archived:
            return True
        self.message = (
            f"{project.path} is archived in GitLab, so it is read-only here for everyone."
        )
        return False


# Checked as soon as the project is known, before the route is: a non-member learns nothing
# from which routes exist.
PROJECT_PERMISSIONS: tuple[type[BasePermission], ...] = (IsVisibleProject,)
READ_PERMISSIONS = PROJECT_PERMISSIONS + (IsServedRoute,)
WRITE_PERMISSIONS = READ_PERMISSIONS + (CanWriteProject, IsProjectNotArchived)


def permissions_for(route: Route | None) -> tuple[type[BasePermission], ...]:
    """The permission classes of a route; of the project alone while the route is unknown."""
    if route is None:
        return PROJECT_PERMISSIONS
    return WRITE_PERMISSIONS if route.action.writes else READ_PERMISSIONS
