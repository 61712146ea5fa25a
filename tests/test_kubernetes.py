"""deploy/kubernetes/: valid against Kubernetes' schemas (offline), and consistent with the
service: settings docs/configuration.md documents, probes Django answers, commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
# The oldest Kubernetes the manifests are for, and the newest the validator knows.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
SECRET_NAMES = re.compile(r"SECRET|_TOKEN$|PASSWORD|ACCESS_KEY|DATABASE_URL|STORE_URI")


def resources() -> list[dict]:
    found = []
    for path in MANIFESTS:
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def one(kind: str) -> dict:
    (found,) = [resource for resource in resources() if resource["kind"] == kind]
    return found


def pod_specs() -> list[dict]:
    specs = []
    for resource in resources():
        if resource["kind"] in ("Deployment", "Job"):
            specs.append(resource["spec"]["template"]["spec"])
        elif resource["kind"] == "CronJob":
            specs.append(resource["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs


def containers() -> list[dict]:
    return [c for spec in pod_specs() for c in spec.get("initContainers", []) + spec["containers"]]


def documented_settings() -> set[str]:
    table = (ROOT / "docs" / "configuration.md").read_text()
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))


class TestManifests:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_it_validates_every_resource_against_kubernetes_schemas(self, version):
        kinds = set()
        for resource in resources():
            kubernetes_validate.validate(resource, version, strict=True)
            kinds.add(resource["kind"])

        assert kinds >= {"ConfigMap", "Secret", "Deployment", "Service", "Job", "CronJob",
                         "PodDisruptionBudget", "HorizontalPodAutoscaler"}  # fmt: skip

    def test_it_catches_a_mistake_offline(self):
        deployment = one("Deployment")
        deployment["spec"]["replicaCount"] = 3

        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)

    def test_it_configures_only_documented_settings_and_keeps_secrets_in_the_secret(self):
        config, secret = one("ConfigMap")["data"], one("Secret")["stringData"]

        assert (set(config) | set(secret)) - documented_settings() == set()
        assert [name for name in config if SECRET_NAMES.search(name)] == []
        assert "SECRET_KEY" in secret and "DATABASE_URL" in secret

    def test_it_probes_with_a_host_django_answers(self):
        allowed = one("ConfigMap")["data"]["ALLOWED_HOSTS"].split(",")
        (server,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
        probes = {name: server[name]["httpGet"]
                  for name in ("startupProbe", "livenessProbe", "readinessProbe")}  # fmt: skip

        assert probes["readinessProbe"]["path"] == "/readyz"
        assert probes["livenessProbe"]["path"] == "/healthz"
        for probe in probes.values():
            assert probe["httpHeaders"] == [{"name": "Host", "value": allowed[0]}]
        assert server["resources"]["requests"] and server["resources"]["limits"]

    def test_it_migrates_once_per_release_before_the_pods_serve(self):
        job = one("Job")["spec"]["template"]["spec"]["containers"][0]
        (init,) = one("Deployment")["spec"]["template"]["spec"]["initContainers"]

        assert job["command"] == ["python", "manage.py", "upgrade"]
        assert init["command"] == ["python", "manage.py", "upgrade", "--check"]
        assert one("Job")["metadata"]["name"].endswith(
            one("Job")["metadata"]["labels"]["app.kubernetes.io/version"].replace(".", "-")
        )

    def test_it_runs_one_image_and_only_commands_that_exist(self):
        images = {container["image"] for container in containers()}
        commands = {container["command"][2] for container in containers()}

        assert len(images) == 1
        assert commands <= set(get_commands())

    def test_it_stops_pods_after_gunicorn_finishes_its_requests(self):
        spec = one("Deployment")["spec"]["template"]["spec"]
        graceful = int(one("ConfigMap")["data"]["GRACEFUL_TIMEOUT"])

        assert spec["terminationGracePeriodSeconds"] > graceful
        assert one("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
        assert "replicas" not in one("Deployment")["spec"]  # the autoscaler's
