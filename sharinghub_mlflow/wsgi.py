"""WSGI entry point, served by gunicorn (`python manage.py serve`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sharinghub_mlflow.settings")

application = get_wsgi_application()

# Build MLflow's app and stores before the worker takes its first request, not during it.
from mlflow_bridge.mlflow_app import flask_app  # noqa: E402

flask_app()
