"""Tokens are never written to logs, databases or error messages."""

from pathlib import Path

from tests.api import Api


def files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


def test_it_never_writes_a_token_to_logs_databases_or_answers(gunicorn_server, cast):
    uri = gunicorn_server.tracking_uri(cast.project.path)
    bad_tokens = ["glpat-never-seen-before", "gldt-deploy-token", "x" * 300, "glpat-\u00e9t\u00e9"]
    answers = []
    # The cast's tokens: users other tests added to the shared GitLab double change nothing.
    secrets = [user.token for user in cast.people()] + bad_tokens
    for token in secrets:
        api = Api(uri, token)
        answers.append(api.post("runs/search", {"experiment_ids": ["0"]}))
        answers.append(api.call("PUT", "api/2.0/mlflow-artifacts/artifacts/1/x", data=b"x"))
        answers.append(api.get("experiments/get", experiment_id="999"))

    written = [gunicorn_server.log, *files_under(gunicorn_server.data_dir)]
    for path in written:
        content = path.read_bytes()
        leaked = [s for s in secrets if s.encode("utf-8", "replace") in content]
        assert leaked == [], path
    for answer in answers:
        assert not any(s in answer.text for s in secrets)
        assert not any(s in str(answer.headers) for s in secrets)
