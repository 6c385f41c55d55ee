import pytest

import squidmesh
from squidmesh.testing import wait_for_run

pytestmark = pytest.mark.cluster


def test_three_step_run_completes_through_a_real_cluster(cluster):
    run = squidmesh.start_run("tests.three_steps", {"label": "hi"})
    done = wait_for_run(run.pk)
    assert done.status == "completed"
    assert done.context == {"a": 1, "seen": ["hi"], "b": 2, "c": 3}


@pytest.mark.django_db(transaction=True)
def test_run_cluster__runs_a_workflow_and_closes_its_log_after_the_block():
    from squidmesh.testing import run_cluster
    from tests.conftest import ROOT

    with run_cluster(
        settings_module="tests.settings",
        cwd=ROOT,
        pythonpath=[str(ROOT), str(ROOT / "example_project")],
    ) as running:
        run = squidmesh.start_run("tests.three_steps", {"label": "x"})
        assert wait_for_run(run.pk).status == "completed"
    assert running.log.closed  # filterwarnings=error would turn an open one into a failure
    assert "running." in running.output()
