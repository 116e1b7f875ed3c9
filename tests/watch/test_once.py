"""`watch --once`: one reconcile, then an exit code like apply's."""

from __future__ import annotations

from typing import Any

from agentflow_jobs.cli import main
from agentflow_jobs.runner import Workspace
from tests.watch.conftest import Project, rows


def test_once_applies_what_is_out_of_date_and_exits_0(project: Project) -> None:
    project.write_input("reviews", rows(3))
    project.write_spec("reviews")
    assert main(["watch", "--once"]) == 0
    assert len(project.output("reviews")) == 3
    assert main(["watch", "--once", "specs"]) == 0
    assert project.fake.count == 3


def test_once_with_an_invalid_spec_runs_the_others_and_exits_3(
    project: Project, capsys: Any
) -> None:
    project.write_input("good", rows(2))
    project.write_spec("good")
    (project.root / "specs" / "bad.yaml").write_text(project.spec_text("bad", mode="fast"))
    assert main(["watch", "--once"]) == 3
    assert "specs/bad.yaml:" in capsys.readouterr().err
    assert len(project.output("good")) == 2


def test_once_while_another_process_holds_the_state_exits_5(project: Project) -> None:
    project.write_input("reviews", rows(1))
    project.write_spec("reviews")
    with Workspace(project.root / ".agentflow" / "state.db"):
        assert main(["watch", "--once"]) == 5
    assert project.fake.count == 0


def test_once_collects_batches_in_flight_without_submitting_again(project: Project) -> None:
    project.write_input("reviews", rows(6))
    project.write_spec("reviews", mode="batch", execution={"batch_size": 3})
    assert main(["apply", "--detach"]) == 0
    assert main(["watch", "--once"]) == 0
    assert [row["id"] for row in project.output("reviews")] == [f"r{i}" for i in range(6)]
    assert project.fake.count == 6
