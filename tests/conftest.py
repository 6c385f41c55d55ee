import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from squidmesh.testing import Cluster
from tests.availability import apply_policy, fail_if_missing, in_ci
from tests.tiers import implied_markers

ROOT = Path(__file__).resolve().parent.parent


def is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")


def pytest_collection_modifyitems(config, items):
    for item in items:
        # A test cannot forget the marker its fixture implies, nor `slow`
        # (the fast tier is `-m "not slow"`, tests/tiers.py).
        present = {marker.name for marker in item.iter_markers()}
        for name in sorted(implied_markers(present, getattr(item, "fixturenames", ()))):
            item.add_marker(getattr(pytest.mark, name))
    # chromium and Redis: skipped with the install command outside CI, failed in CI.
    apply_policy(items, ci=in_ci())
    if is_postgres():
        return
    # CI runs the suite a second time with DATABASE_URL pointing at Postgres,
    # where these run; on SQLite they cannot (no row locks, one writer).
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://…")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


def pytest_runtest_setup(item):
    fail_if_missing(item)


def make_cluster(**env):
    return Cluster(
        settings_module="tests.settings",
        cwd=ROOT,
        pythonpath=[str(ROOT), str(ROOT / "example_project")],
        env=env,
    )


@pytest.fixture
def cluster(transactional_db):
    """A real qcluster subprocess on the test database, stopped after the test."""
    running = make_cluster().start()
    yield running
    running.kill()  # a graceful stop only costs time here
    running.log.close()  # an open log would be a ResourceWarning, an error here
    if os.environ.get("SQUIDMESH_SHOW_CLUSTER_LOG"):
        print(running.output())


@pytest.fixture
def new_cluster(transactional_db):
    """A factory of extra clusters (for kill/restart tests); all stopped afterwards."""
    started = []

    def start(**env):
        started.append(make_cluster(**env).start())
        return started[-1]

    yield start
    for running in started:
        running.kill()
        running.log.close()


@pytest.fixture
def redis_broker(monkeypatch):
    """Switch django-q2 to the real Redis at 127.0.0.1:6379 for one test.

    A cluster started with `new_cluster(SQUIDMESH_TEST_BROKER="redis")`
    pulls from the same queue.
    """
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(
        Conf, "REDIS", {"host": "127.0.0.1", "port": 6379, "db": settings.TEST_REDIS_DB}
    )
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


@pytest.fixture
def db_vendor():
    return connection.vendor
