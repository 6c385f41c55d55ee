import pytest

import squidmesh
from squidmesh.testing import wait_for_run

pytestmark = pytest.mark.cluster


def test_three_step_run_completes_through_a_real_cluster(cluster):
    run = squidmesh.start_run("tests.three_steps", {"label": "hi"})
    done = wait_for_run(run.pk)
    assert done.status == "completed"
    assert done.context == {"a": 1, "seen": ["hi"], "b": 2, "c": 3}
