"""The pages for people, all under /mlflow/ (and / leading there).

A project path has at least two segments, so none of these can be taken for a project's
page; `<project path>/connect/` matches the last `/connect/`, and must come before the
tracking view's catch-all in sharinghub_mlflow/urls.py.
"""

from django.urls import include, path, re_path

from projects import views

urlpatterns = [
    path("", views.root),
    path("mlflow/", views.portal_page, name="portal"),
    path("mlflow/login/", views.login_page, name="login"),
    path("mlflow/logout/", views.logout_page, name="logout"),
    # social-auth-app-django: auth/login/gitlab/ goes to GitLab, auth/complete/gitlab/ returns.
    path("mlflow/auth/", include("social_django.urls", namespace="social")),
    re_path(r"^mlflow/(?P<project_path>.+)/connect/$", views.connect_page, name="connect"),
]
