"""Permission classes in DRF's shape, composed per route by `permissions_for`.

Each answers `has_permission(request, view)`; the view turns the first "no" into a response:
404 when the caller cannot read the project (it does not exist for them), 403 otherwise.
"""

from __future__ import annotations

from typing import Protocol

from mlflow_bridge.routes import Action, Route
from projects.access import ProjectAccess


class ProjectRequest(Protocol):
    """What permission classes look at: the caller's project access and the matched route."""

    project_access: ProjectAccess
    route: Route


class BasePermission:
    message = "Permission denied."
    # 404 hides the project's existence; 403 says the project exists but the action is not yours.
    status = 403

    def has_permission(self, request: ProjectRequest, view: object = None) -> bool:
        raise NotImplementedError

    def describe(self, request: ProjectRequest) -> str:
        return self.message


class IsProjectMember(BasePermission):
    """Allows access only to users with at least Guest level in the project."""

    status = 404

    def has_permission(self, request: ProjectRequest, view: object = None) -> bool:
        return request.project_access.can_read


class IsServedRoute(BasePermission):
    """Allows access only to routes this service can keep inside one project."""

    message = "{feature}: not available on this SharingHub MLflow server."

    def has_permission(self, request: ProjectRequest, view: object = None) -> bool:
        return request.route.action is not Action.REFUSED

    def describe(self, request: ProjectRequest) -> str:
        feature = request.route.feature
        return self.message.format(feature=feature[:1].upper() + feature[1:])


class CanWriteProject(BasePermission):
    """Allows create, update and delete only to Developer or higher."""

    message = "Developer or higher can write to {path}; you are {role}."

    def has_permission(self, request: ProjectRequest, view: object = None) -> bool:
        return request.project_access.can_write

    def describe(self, request: ProjectRequest) -> str:
        project_access = request.project_access
        return self.message.format(path=project_access.project.path, role=project_access.role)


class IsProjectNotArchived(BasePermission):
    """Allows create, update and delete only in projects GitLab has not archived."""

    message = "{path} is archived in GitLab, so it is read-only here for everyone."

    def has_permission(self, request: ProjectRequest, view: object = None) -> bool:
        return not request.project_access.project.archived

    def describe(self, request: ProjectRequest) -> str:
        return self.message.format(path=request.project_access.project.path)


READ_PERMISSIONS: tuple[type[BasePermission], ...] = (IsProjectMember, IsServedRoute)
WRITE_PERMISSIONS = READ_PERMISSIONS + (CanWriteProject, IsProjectNotArchived)


def permissions_for(route: Route) -> tuple[type[BasePermission], ...]:
    return WRITE_PERMISSIONS if route.action.writes else READ_PERMISSIONS
