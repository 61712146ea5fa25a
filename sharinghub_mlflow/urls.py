"""URL routes: health probes, the admin, GitLab's webhooks, and every project's MLflow server."""

from django.contrib import admin
from django.urls import path, re_path

from mlflow_bridge import views as bridge_views
from projects import webhooks
from sharinghub_mlflow import health

handler500 = "mlflow_bridge.errors.server_error"

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("admin/", admin.site.urls),
    path("hooks/gitlab/", webhooks.gitlab_hook),
    re_path(r"^mlflow/(?P<location>.+)$", bridge_views.tracking),
]
