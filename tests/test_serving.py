"""`serve`'s gunicorn command line and printed configuration; production settings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from mlflow_bridge.embedded import serving
from tests import testenv
from tests.live import ROOT

OPTIONS = {"bind": "0.0.0.0:8000", "workers": 4, "threads": 2, "timeout": 900,
           "graceful_timeout": 45}  # fmt: skip


class TestWithoutPassword:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            pytest.param("postgresql://u:pw@db:5432/m", "postgresql://u:***@db:5432/m", id="pg"),
            pytest.param("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0", id="redis"),
            pytest.param("s3://bucket/prefix", "s3://bucket/prefix", id="no-password"),
            pytest.param("/data/artifacts", "/data/artifacts", id="directory"),
        ],
    )
    def test_it_hides_only_the_password(self, url, shown):
        assert serving.without_password(url) == shown


class TestEffectiveConfiguration:
    def test_it_shows_the_gunicorn_options(self):
        shown = dict(serving.effective_configuration(OPTIONS))

        assert shown["workers"] == "4 (gthread, 2 thread(s) each)"
        assert shown["timeout"] == "900s, graceful shutdown 45s"

    def test_it_describes_a_database_without_its_password(self):
        database = {"ENGINE": "django.db.backends.postgresql", "NAME": "sharinghub",
                    "USER": "app", "PASSWORD": "db-secret", "HOST": "db", "PORT": 5432}  # fmt: skip

        assert serving.describe_database(database) == "postgresql app@db:5432/sharinghub"

    def test_it_never_shows_a_secret(self, settings):
        settings.MLFLOW_BACKEND_STORE_URI = "postgresql://app:mlflow-secret@db/mlflow"
        settings.MLFLOW_REGISTRY_STORE_URI = "postgresql://app:mlflow-secret@db/mlflow"
        settings.CACHE_URL = "redis://:cache-secret@cache:6379/0"
        settings.GITLAB_SERVICE_TOKEN = "glpat-service-secret"
        settings.GITLAB_WEBHOOK_SECRET = "hook-secret"

        shown = dict(serving.effective_configuration(OPTIONS))

        assert "secret" not in " ".join(shown.values())
        assert shown["cache"] == "redis://:***@cache:6379/0"
        assert shown["gitlab service token"] == "set"

    @pytest.mark.parametrize(
        ("client_id", "shown"),
        [
            pytest.param("app-id", "Log in with GitLab (OAuth), or a GitLab access token",
                         id="oauth"),
            pytest.param("", "a GitLab access token on the login page (no OAuth application: "
                         "set GITLAB_OAUTH_CLIENT_ID and GITLAB_OAUTH_CLIENT_SECRET for "
                         "\"Log in with GitLab\")", id="token-only"),
        ],
    )  # fmt: skip
    def test_it_says_which_browser_sign_ins_are_on(self, settings, client_id, shown):
        settings.GITLAB_OAUTH_CLIENT_ID = client_id

        assert dict(serving.effective_configuration(OPTIONS))["browser sign-in"] == shown

    def test_it_passes_the_options_to_gunicorn(self):
        argv = serving.gunicorn_argv(OPTIONS)

        assert argv[argv.index("--threads") + 1] == "2"
        assert argv[argv.index("--graceful-timeout") + 1] == "45"

    def test_it_serves_the_wsgi_application_the_settings_name(self):
        argv = serving.gunicorn_argv(OPTIONS)

        assert argv[argv.index("gunicorn") + 1] == "sharinghub_mlflow.wsgi:application"

    def test_it_serves_request_lines_mlflows_ui_builds_for_100_runs(self):
        argv = serving.gunicorn_argv(OPTIONS)

        assert int(argv[argv.index("--limit-request-line") + 1]) >= 100 * len("run_ids=") + 3300

    @pytest.mark.parametrize(("threads", "worker"), [(1, "JsonErrorSyncWorker"),
                                                     (2, "JsonErrorThreadWorker")])  # fmt: skip
    def test_it_runs_workers_that_refuse_in_mlflows_json_shape(self, threads, worker):
        argv = serving.gunicorn_argv({**OPTIONS, "threads": threads})

        assert argv[argv.index("--worker-class") + 1] == f"mlflow_bridge.embedded.workers.{worker}"


class TestWorker:
    def test_it_keeps_the_loaded_app_out_of_the_collectors_sight(self, tmp_path):
        # What gunicorn's worker imports: Django, MLflow's app and stores, then gc.freeze().
        script = "import gc, sharinghub_mlflow.wsgi; print(gc.get_freeze_count())"
        env = {**os.environ, "DATA_DIR": str(tmp_path)}
        for name in ("DATABASE_URL", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_REGISTRY_STORE_URI"):
            env.pop(name, None)

        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip

        assert result.returncode == 0, result.stderr[-2000:]
        assert int(result.stdout.split()[-1]) > 100_000


class TestProductionSettings:
    def test_it_passes_djangos_deployment_checks(self, tmp_path):
        env = {
            **os.environ,
            "DATA_DIR": str(tmp_path),
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "mlflow.example.com",
            "DEBUG": "false",
            "SECURE_SSL": "true",
            "TRUST_X_FORWARDED_PROTO": "true",
            "SECURE_HSTS_SECONDS": "31536000",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
            "SECURE_HSTS_PRELOAD": "true",
        }

        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

        assert result.returncode == 0, result.stdout + result.stderr

    def test_it_shares_the_cache_through_redis_and_keeps_sessions_in_the_database(self, tmp_path):
        env = {**os.environ, "DATA_DIR": str(tmp_path), "CACHE_URL": testenv.redis_url("serving")}
        code = (
            "from django.conf import settings; from django.core.cache import cache; "
            "cache.set('shared', 'yes', 5); "
            "print(settings.CACHES['default']['BACKEND'], settings.SESSION_ENGINE, "
            "cache.get('shared'))"
        )

        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

        assert result.stdout.splitlines()[-1].split() == [
            "sharinghub_mlflow.cache.FailSoftRedisCache",
            "django.contrib.sessions.backends.db",
            "yes",
        ], result.stderr

    def test_it_redirects_plain_http_but_not_the_health_probes(self, client, settings):
        settings.SECURE_SSL_REDIRECT = True

        assert client.get("/healthz").status_code == 200
        assert client.get("/mlflow/ml/team/proj/tracking/").status_code == 301
