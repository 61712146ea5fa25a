"""The shared cast, in project ml/team/churn:
- Olivia owns it; Mark maintains it; Dave is a Developer; these three can do everything.
- Gina (Guest), Paula (Planner) and Rita (Reporter) can read everything and write nothing.
- Sam is a Developer only through a group the project is shared with (GitLab reports it
  only in members/all).
- Minnie has Minimal Access on the top-level group: the project does not exist for her.
- Charlie is no member at all, and Otto is a Developer of another project, ml/other/churn.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.gitlab_double import GitLabDouble, Project, User


@dataclass
class Cast:
    project: Project
    other_project: Project
    olivia: User
    mark: User
    dave: User
    gina: User
    paula: User
    rita: User
    sam: User
    minnie: User
    charlie: User
    otto: User

    def people(self) -> list[User]:
        """Everyone in the cast, Olivia to Otto."""
        return [getattr(self, name) for name in PEOPLE]


PEOPLE = [name for name in Cast.__dataclass_fields__ if "project" not in name]


def make_cast(
    gitlab: GitLabDouble, path: str = "ml/team/churn", other: str = "ml/other/churn"
) -> Cast:
    project = gitlab.add_project(path)
    other_project = gitlab.add_project(other)
    users = {name: gitlab.add_user(name) for name in PEOPLE}
    for name, level in [("olivia", 50), ("dave", 30), ("gina", 10), ("paula", 15), ("rita", 20)]:
        project.direct[users[name].id] = level
    # Mark maintains the whole `ml/team` group: inherited membership shows as group_access.
    gitlab.group_members[(project.namespace, users["mark"].id)] = 40
    project.shared[users["sam"].id] = 30
    gitlab.group_members[("ml", users["minnie"].id)] = 5
    other_project.direct[users["otto"].id] = 30
    other_project.direct[users["olivia"].id] = 50
    return Cast(project=project, other_project=other_project, **users)
