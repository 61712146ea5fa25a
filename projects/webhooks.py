"""POST /hooks/gitlab/: GitLab's member and project events drop the cached answers they change.

Accepts group webhooks (Member Hook) and system hooks. The shared secret arrives in plain
text as X-Gitlab-Token and is compared in constant time. A delivery is handled once per
Idempotency-Key (or X-Gitlab-Event-UUID): GitLab repeats the key when it retries. Unknown
events are acknowledged and ignored. Handling is a few indexed deletes: no GitLab call.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from projects import membership_cache, records
from projects.models import GitLabProject, Membership, WebhookDelivery

logger = logging.getLogger(__name__)


def _project_member(event: dict) -> int:
    """System hooks *_team: one user in one project."""
    memberships = Membership.objects.filter(
        user_id=int(event["user_id"]), project_id=int(event["project_id"])
    )
    return membership_cache.invalidate(memberships)


def _group_member(event: dict) -> int:
    """*_group: one user in every project under the group and its subgroups.

    GitLab sends `group_path`, the group's own path segment, not its full path: every cached
    project with that segment among its namespaces is dropped. That may drop a few more rows
    than needed (a same-named group elsewhere), never fewer, and costs only a GitLab call each.
    """
    full_path = event.get("group_full_path") or event.get("full_path")
    if full_path:
        under_group = Q(project__path__istartswith=f"{full_path}/")
    else:
        segment = event["group_path"]
        under_group = Q(project__path__istartswith=f"{segment}/") | Q(
            project__path__icontains=f"/{segment}/"
        )
    memberships = Membership.objects.filter(under_group, user_id=int(event["user_id"]))
    return membership_cache.invalidate(memberships)


class InvalidField(ValueError):
    """A field GitLab always sends, with a value GitLab never sends: its message names it."""


def _project_path(event: dict) -> str:
    """The event's new project path: GitLab's `group/…/project`, never null, a list or empty."""
    path = event["path_with_namespace"]
    if not isinstance(path, str) or not path or "" in path.split("/"):
        raise InvalidField(
            f"path_with_namespace must be a project path like 'group/project', not {path!r:.80}."
        )
    return path


def _project_moved(event: dict) -> int:
    """project_rename keeps who may do what; project_transfer changes the inherited groups."""
    project_id = int(event["project_id"])
    records.move_project(project_id, _project_path(event))
    if event["event_name"] == "project_rename":
        return 0
    return membership_cache.invalidate(Membership.objects.filter(project_id=project_id))


def _project_destroyed(event: dict) -> int:
    """The project is gone: orphaned, its MLflow data kept in its workspace until
    `purge_projects` (GitLab may still restore it)."""
    project_id = int(event["project_id"])
    membership_cache.orphan(project_id)
    return membership_cache.invalidate(Membership.objects.filter(project_id=project_id))


def _project_updated(event: dict) -> int:
    """Visibility decides what non-members read (visibility.py): the new one applies at once,
    and the project's feature levels (which no hook reports) are asked of GitLab again."""
    changed = GitLabProject.objects.filter(id=int(event["project_id"])).update(
        visibility=str(event["project_visibility"]), last_seen=timezone.now() - timedelta(days=1)
    )
    # Non-members' answers (level 0) were decided with the old visibility and levels.
    stale = Membership.objects.filter(project_id=int(event["project_id"]), access_level=0)
    return changed + membership_cache.invalidate(stale)


HANDLERS = {
    "user_add_to_team": _project_member,
    "user_update_for_team": _project_member,
    "user_remove_from_team": _project_member,
    "user_add_to_group": _group_member,
    "user_update_for_group": _group_member,
    "user_remove_from_group": _group_member,
    "project_rename": _project_moved,
    "project_transfer": _project_moved,
    "project_destroy": _project_destroyed,
    "project_update": _project_updated,
}


def _answer(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"message": message, **extra}, status=status)


@csrf_exempt
@require_POST
def gitlab_hook(request: HttpRequest) -> JsonResponse:
    secret = settings.GITLAB_WEBHOOK_SECRET
    if not secret:
        return _answer(503, "GitLab webhooks are not configured here: set GITLAB_WEBHOOK_SECRET.")
    given = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return _answer(401, "X-Gitlab-Token does not match: set the hook's secret token to "
                            "GITLAB_WEBHOOK_SECRET.")  # fmt: skip
    try:
        event = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _answer(400, "The body is not JSON.")
    if not isinstance(event, dict):
        return _answer(400, "The body is not a JSON object.")
    name = str(event.get("event_name") or "")
    key = request.headers.get("Idempotency-Key") or request.headers.get("X-Gitlab-Event-UUID")
    handler = HANDLERS.get(name)
    with transaction.atomic():
        if key:
            _, new = WebhookDelivery.objects.get_or_create(key=key[:255], defaults={"event": name})
            if not new:
                return _answer(200, "Already handled.", event=name, invalidated=0)
        if handler is None:
            return _answer(200, "Event ignored.", event=name, invalidated=0)
        try:
            invalidated = handler(event)
        except InvalidField as exc:
            transaction.set_rollback(True)
            return _answer(400, f"A {name} event's {exc}")
        except (KeyError, TypeError, ValueError):
            transaction.set_rollback(True)
            return _answer(400, f"A {name} event needs the fields GitLab sends with it.")
    logger.info("GitLab %s: %d cached memberships forgotten", name, invalidated)
    return _answer(200, "Handled.", event=name, invalidated=invalidated)
