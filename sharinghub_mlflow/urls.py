"""URL routes: health probes, the admin, GitLab's webhooks, pages for people (login, portal,
connect pages) and every project's MLflow server.

The pages are all under /mlflow/ (and / leading there). A project path has at least two
segments, so none of them can be taken for a project's page; `<project path>/connect/` matches
the last `/connect/`, and comes before the tracking view's catch-all.
"""

from django.contrib import admin
from django.urls import include, path, re_path

from mlflow_bridge.edge import views as bridge_views
from mlflow_bridge.edge.browser import for_browsers
from projects import webhooks
from sharinghub_mlflow import health, observability, pages

handler500 = "mlflow_bridge.edge.errors.server_error"

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", observability.metrics),
    path("admin/", admin.site.urls),
    path("hooks/gitlab/", webhooks.gitlab_hook),
    path("", pages.root),
    path("mlflow/", pages.portal_page, name="portal"),
    path("mlflow/login/", pages.login_page, name="login"),
    path("mlflow/login/token/", pages.token_login, name="token-login"),
    path("mlflow/logout/", pages.logout_page, name="logout"),
    # social-auth-app-django: auth/login/gitlab/ goes to GitLab, auth/complete/gitlab/ returns.
    path("mlflow/auth/", include("social_django.urls", namespace="social")),
    re_path(r"^mlflow/(?P<project_path>.+)/connect/$", pages.connect_page, name="connect"),
    re_path(r"^mlflow/(?P<location>.+)$", for_browsers(bridge_views.tracking)),
]
