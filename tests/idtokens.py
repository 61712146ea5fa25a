"""GitLab's side of CI id_tokens for tests: an RSA key pair made here (cryptography), published
through the GitLab double's key set, and id_tokens signed with it as GitLab signs them."""

from __future__ import annotations

import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.gitlab_double import GitLabDouble, Project, User

AUDIENCE = "https://mlflow.example.com"
ROLES = {10: "guest", 15: "planner", 20: "reporter", 30: "developer", 40: "maintainer",
         50: "owner"}  # fmt: skip


class Signer:
    """One of GitLab's signing keys; `publish` adds it to the double's key set."""

    def __init__(self, gitlab: GitLabDouble) -> None:
        self.gitlab = gitlab
        self.kid = uuid.uuid4().hex
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def publish(self) -> Signer:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.gitlab.signing_keys.append({**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"})
        return self

    def claims(self, project: Project, user: User, level: int = 30, **changes) -> dict:
        """GitLab's claims for a job of `user` in `project`, started now."""
        now = int(time.time())
        job_id = int(changes.pop("job_id", 0)) or now % 1_000_000 + 7_000_000
        return {
            "iss": self.gitlab.url, "aud": AUDIENCE, "iat": now, "nbf": now - 5,
            "exp": now + 3600, "sub": f"project_path:{project.path}:ref_type:branch:ref:main",
            "jti": uuid.uuid4().hex, "namespace_id": "7", "namespace_path": project.namespace,
            "project_id": str(project.id), "project_path": project.path,
            "user_id": str(user.id), "user_login": user.username,
            "user_email": f"{user.username}@x", "user_access_level": ROLES[level],
            "pipeline_id": str(job_id + 1), "pipeline_source": "push", "job_id": str(job_id),
            "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main",
            "ref_protected": "false", "runner_id": 1, "sha": "0" * 40, **changes,
        }  # fmt: skip

    def sign(self, claims: dict, **header) -> str:
        return jwt.encode(claims, self.private_key, "RS256", headers={"kid": self.kid, **header})

    def id_token(self, project: Project, user: User, level: int = 30, **changes) -> str:
        return self.sign(self.claims(project, user, level, **changes))
