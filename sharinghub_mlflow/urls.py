"""URL routes: health probes, the admin, GitLab's webhooks, pages for people (login, portal,
connect pages) and every project's MLflow server."""

from django.contrib import admin
from django.urls import include, path, re_path

from mlflow_bridge import views as bridge_views
from mlflow_bridge.browser import for_browsers
from projects import webhooks
from sharinghub_mlflow import health, observability

handler500 = "mlflow_bridge.errors.server_error"

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", observability.metrics),
    path("admin/", admin.site.urls),
    path("hooks/gitlab/", webhooks.gitlab_hook),
    # Before the catch-all below: /mlflow/ itself, login, logout and <project>/connect/.
    path("", include("projects.urls")),
    re_path(r"^mlflow/(?P<location>.+)$", for_browsers(bridge_views.tracking)),
]
