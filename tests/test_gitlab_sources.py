"""The GitLab client's newer answers: where a level comes from, projects and members seen by a
service token, and the CI job behind a job token."""

import pytest
import responses

from projects import gitlab

BASE = "https://gitlab.example.com"
PROJECT = f"{BASE}/api/v4/projects/42"


def client(**kwargs) -> gitlab.GitLabClient:
    return gitlab.GitLabClient("glpat-secret", base_url=BASE, timeout=5, **kwargs)


def project_body(project_access=None, group_access=None) -> dict:
    def level(value):
        return None if value is None else {"access_level": value, "notification_level": 3}

    return {"id": 42, "path_with_namespace": "ml/team/proj", "archived": True,
            "permissions": {"project_access": level(project_access),
                            "group_access": level(group_access)}}  # fmt: skip


class TestSource:
    @responses.activate
    @pytest.mark.parametrize(
        ("project_access", "group_access", "source"),
        [
            pytest.param(30, None, "project", id="direct"),
            pytest.param(None, 40, "group", id="inherited"),
            pytest.param(40, 40, "project", id="both equal"),
            pytest.param(20, 40, "group", id="group higher"),
        ],
    )
    def test_it_names_the_answer_that_gave_the_level(self, project_access, group_access, source):
        responses.get(PROJECT, json=project_body(project_access, group_access))

        assert client().project(42, user_id=7).source == source

    @responses.activate
    def test_it_calls_a_level_only_members_all_knows_shared(self):
        responses.get(PROJECT, json=project_body())
        responses.get(f"{PROJECT}/members/all/7", json={"id": 7, "access_level": 30})

        assert client().project(42, user_id=7).source == "shared"

    @responses.activate
    def test_it_gives_no_source_without_access(self):
        responses.get(PROJECT, json=project_body())
        responses.get(f"{PROJECT}/members/all/7", status=404, json={"message": "404 Not found"})

        assert client().project(42, user_id=7).source == ""


class TestServiceToken:
    @responses.activate
    def test_it_reads_a_projects_metadata_without_asking_for_members(self):
        responses.get(PROJECT, json=project_body())

        project = client().project_metadata(42)

        assert (project.path_with_namespace, project.archived) == ("ml/team/proj", True)
        assert len(responses.calls) == 1

    @responses.activate
    @pytest.mark.parametrize(
        ("direct", "group", "expected"),
        [
            pytest.param(30, None, (30, "project"), id="direct"),
            pytest.param(None, 30, (30, "group"), id="inherited"),
            pytest.param(20, None, (30, "shared"), id="shared"),
        ],
    )
    def test_it_finds_a_members_level_and_source(self, direct, group, expected):
        def member(level):
            if level is None:
                return {"status": 404, "json": {"message": "404 Not found"}}
            return {"json": {"id": 7, "access_level": level}}

        responses.get(f"{PROJECT}/members/all/7", json={"id": 7, "access_level": 30})
        responses.get(f"{PROJECT}/members/7", **member(direct))
        responses.get(f"{BASE}/api/v4/groups/ml%2Fteam/members/all/7", **member(group))

        assert client().membership(42, "ml/team/proj", 7) == expected

    @responses.activate
    def test_it_reports_no_level_for_a_non_member(self):
        responses.get(f"{PROJECT}/members/all/7", status=404, json={"message": "404 Not found"})

        assert client().membership(42, "ml/team/proj", 7) == (0, "")
        assert len(responses.calls) == 1


class TestCurrentJob:
    BODY = {"id": 8, "status": "running", "web_url": f"{BASE}/ml/team/proj/-/jobs/8",
            "pipeline": {"id": 6, "project_id": 42, "ref": "main"},
            "user": {"id": 1, "username": "alice"},
            "project": {"ci_job_token_scope_enabled": False}}  # fmt: skip

    @responses.activate
    def test_it_sends_the_job_token_in_the_job_token_header_only(self):
        responses.get(f"{BASE}/api/v4/job", json=self.BODY)

        job = client(job_token=True).current_job()

        headers = responses.calls[0].request.headers
        assert headers["JOB-TOKEN"] == "glpat-secret"
        assert "Authorization" not in headers
        assert (job.id, job.project_id, job.pipeline_id, job.user.username) == (8, 42, 6, "alice")
        assert job.status == "running"

    @responses.activate
    def test_it_raises_token_rejected_for_a_token_gitlab_does_not_know(self):
        responses.get(f"{BASE}/api/v4/job", status=401, json={"message": "401 Unauthorized"})

        with pytest.raises(gitlab.TokenRejected):
            client(job_token=True).current_job()

    @responses.activate
    def test_it_raises_token_rejected_for_a_job_without_pipeline_or_user(self):
        responses.get(f"{BASE}/api/v4/job", json={"id": 8, "status": "running"})

        with pytest.raises(gitlab.TokenRejected):
            client(job_token=True).current_job()
