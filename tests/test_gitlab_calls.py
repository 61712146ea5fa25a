"""GitLab is asked at most once per (principal, project) per cache TTL."""

from mlflow import MlflowClient


def test_it_makes_at_most_one_gitlab_round_per_ttl_for_a_metric_loop(
    gitlab, cast, gunicorn_server, monkeypatch
):
    project = gitlab.add_project("ml/loops/churn")
    trainer = gitlab.add_user("trainer")
    project.direct[trainer.id] = 30
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", trainer.token)
    client = MlflowClient(tracking_uri=gunicorn_server.tracking_uri(project.path))
    calls_before = len(gitlab.calls)

    run = client.create_run(client.create_experiment("loop"))
    for step in range(500):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)

    calls = gitlab.calls[calls_before:]
    # The cache lives in the database all workers share: only the very first request asks
    # GitLab (who is this token, which role in this project), whichever worker serves the rest.
    assert [path for _, path in calls] == ["/api/v4/user", "/api/v4/projects/ml%2Floops%2Fchurn"]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert len(history) == 500
