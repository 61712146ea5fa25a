"""Build a database as csgroup's mlflow-sharinghub plugin left it: one bare `mlflow server`
(no workspaces) for every project, names suffixed with ` (<project id>)`, tag `project`.

Run as a script: `python old_sharinghub.py <backend uri> <artifacts dir> <json spec> <port>`;
it starts the bare server on the port (the caller's tests.live.free_port), logs through the
stock client and prints what it made as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def fill(uri: str, spec: dict) -> dict:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    made: dict = {"runs": {}, "orphan_experiment": client.create_experiment("orphan")}
    for project in spec["projects"]:
        suffix = f" ({project['id']})"
        experiment_id = client.create_experiment(
            "baseline" + suffix, tags={"project": project["path"]}
        )
        runs = []
        for i in range(2):
            run = client.create_run(experiment_id, run_name=f"run-{i}", tags={"team": "ml"})
            run_id = run.info.run_id
            client.log_param(run_id, "alpha", str(i))
            for step in range(3):
                client.log_metric(run_id, "loss", 1.0 / (step + 1 + i), step=step)
            workdir = Path(tempfile.mkdtemp())
            (workdir / "weights.txt").write_text(f"weights of {project['path']} run {i}")
            client.log_artifact(run_id, str(workdir / "weights.txt"), artifact_path="model")
            client.log_text(run_id, f"notes {i}", "notes.txt")
            client.set_terminated(run_id)
            runs.append(run_id)
        made["runs"][project["path"]] = runs
        model = "churn-model" + suffix
        client.create_registered_model(model, tags={"owner": project["path"]}, description="d")
        for run_id in runs:
            client.create_model_version(model, f"runs:/{run_id}/model", run_id=run_id,
                                        tags={"validated": "yes"})  # fmt: skip
        client.set_registered_model_alias(model, "champion", "2")
        # Prompt names cannot carry the suffix: the plugin's users told them apart by a tag.
        prompt = f"greeting-{project['id']}"
        mlflow.genai.register_prompt(prompt, template="Hello {{name}} from " + project["path"])
        client.set_prompt_tag(prompt, "project", project["path"])
    return made


def main() -> None:
    backend, artifacts, spec, port = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "_MLFLOW"))}
    # Without MLflow's job runner: seven huey consumers, each importing MLflow, for no job.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", port,
         "--workers", "1", "--disable-workspaces"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{uri}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        print(json.dumps(fill(uri, spec)))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a loaded machine: stop it for sure
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
