"""A training script as users write them, run with the stock client against a project URI.

Configured only by MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN (or USERNAME/PASSWORD);
PROJECT_ID gives the id for the suffixed-name check. Prints one JSON object of results.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

project_id = os.environ["PROJECT_ID"]
results: dict = {}
client = MlflowClient()

# No experiment set: the run lands in the project's own Default experiment.
with mlflow.start_run() as default_run:
    mlflow.log_param("where", "default")
results["default_experiment_name"] = client.get_experiment(default_run.info.experiment_id).name

experiment = mlflow.set_experiment("baseline")
results["suffixed_experiment_id"] = mlflow.set_experiment(f"baseline ({project_id})").experiment_id
results["experiment_id"] = experiment.experiment_id

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.1, 0.8], [0.7, 0.2]])
y = np.array([0, 1, 0, 1, 0, 1])
work = Path(tempfile.mkdtemp())
(work / "notes.txt").write_text("hello from the training script")
(work / "plots").mkdir()
(work / "plots" / "a.csv").write_text("x,y\n1,2\n")

with mlflow.start_run(run_name="train") as run:
    mlflow.log_param("alpha", 0.5)
    mlflow.log_params({"beta": 2, "gamma": "x"})
    for step in range(25):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"accuracy": 0.9, "f1": 0.8})
    mlflow.set_tag("team", "churn")
    mlflow.set_tags({"stage": "dev"})
    mlflow.log_artifact(str(work / "notes.txt"))
    mlflow.log_artifacts(str(work / "plots"), artifact_path="plots")
    model = LogisticRegression().fit(X, y)
    info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    version = mlflow.register_model(info.model_uri, "churn-model")
run_id = run.info.run_id

client.set_registered_model_alias("churn-model", "champion", version.version)
client.set_model_version_tag("churn-model", version.version, "validated", "yes")
client.set_registered_model_tag(f"churn-model ({project_id})", "owner", "ml-team")
loaded = mlflow.pyfunc.load_model(f"models:/churn-model/{version.version}")
results["predictions"] = [int(p) for p in loaded.predict(X[:3])]
results["expected_predictions"] = [int(p) for p in model.predict(X[:3])]
champion = mlflow.sklearn.load_model("models:/churn-model@champion")
results["champion_predictions"] = [int(p) for p in champion.predict(X[:3])]


@mlflow.trace
def double(x: int) -> int:
    return 2 * x


results["traced_value"] = double(21)
mlflow.flush_trace_async_logging()
trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
results["trace_status"] = str(trace.info.state)
results["trace_spans"] = [span.name for span in trace.data.spans]

fetched = client.get_run(run_id)
results["params"] = fetched.data.params
results["metrics"] = fetched.data.metrics
results["tags"] = {k: v for k, v in fetched.data.tags.items() if not k.startswith("mlflow.")}
results["loss_history"] = [m.value for m in client.get_metric_history(run_id, "loss")]
results["artifacts"] = sorted(a.path for a in client.list_artifacts(run_id))
results["plot_artifacts"] = sorted(a.path for a in client.list_artifacts(run_id, "plots"))
downloaded = client.download_artifacts(run_id, "notes.txt", str(work / "down"))
results["downloaded_notes"] = Path(downloaded).read_text()
results["search_runs"] = sorted(mlflow.search_runs(experiment_names=["baseline"])["run_id"])
results["run_id"] = run_id
registered = client.get_registered_model("churn-model")
results["registered_tags"] = registered.tags
results["aliases"] = registered.aliases
mv = client.get_model_version("churn-model", version.version)
results["version_tags"] = mv.tags
results["logged_model_id"] = info.model_id
results["logged_models"] = [m.model_id for m in mlflow.search_logged_models(output_format="list")]
results["experiments"] = sorted(e.name for e in client.search_experiments())

json.dump(results, sys.stdout)
