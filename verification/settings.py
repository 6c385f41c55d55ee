"""Django settings of the verification harness: Postgres, the ORM or Redis broker, short leases."""

import os
import sys
from pathlib import Path

import dj_database_url

ROOT = Path(__file__).resolve().parent.parent
BASE_DIR = ROOT
# The smoke check runs the example project's workflows: make its `shop` app importable.
if str(ROOT / "example_project") not in sys.path:
    sys.path.append(str(ROOT / "example_project"))

SECRET_KEY = "squidmesh-verification"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "verification.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_q",
    "squidmesh",
    "shop",
    "verification.chaos",
]

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/sm_rel_verify")
# No persistent connections: after a Postgres restart every process reconnects
# on its next query instead of holding a dead socket.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["OPTIONS"] = {"connect_timeout": 5}
# `squidmesh.testing.Cluster` points its qcluster at the harness's database.
if os.environ.get("SQUIDMESH_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["SQUIDMESH_TEST_DB_NAME"]

Q_CLUSTER = {
    "name": "squidmesh-verification",
    "orm": "default",
    "workers": 2,
    "poll": 0.05,
    # A short default timeout and lease, so a killed worker's task comes back
    # in ~15 s. The lease must exceed the longest step timeout (the example's
    # charge_card: 10 s) plus SQUIDMESH['INTERRUPTED_GRACE'] (check E010), so
    # a redelivery finds the dead worker's attempt already presumed dead.
    "timeout": 4,
    "retry": 15,
    "save_limit": -1,
    "ack_failures": False,
    "max_attempts": 0,
    "catch_up": False,
}

SQUIDMESH = {
    "INTERRUPTED_GRACE": 2,
    # The real django-q2 dispatcher plus a ledger row per dispatch, written in
    # the dispatching transaction (for the "no dispatch after terminal" check).
    "DISPATCHER": "verification.chaos.dispatcher.RecordingDispatcher",
    # Only the harness starts runs; the example's nightly cron stays off.
    "CRON_WORKFLOWS": [],
}

# `--broker redis` (verification.broker): every cluster uses the Redis server
# the harness started on its own port, never the machine's shared one.
if os.environ.get("SQUIDMESH_VERIFY_BROKER") == "redis":
    del Q_CLUSTER["orm"]
    Q_CLUSTER["redis"] = {
        "host": "127.0.0.1",
        "port": int(os.environ.get("SQUIDMESH_VERIFY_REDIS_PORT", "6390")),
        "db": int(os.environ.get("SQUIDMESH_VERIFY_REDIS_DB", "0")),
        # Fail fast while the server is down; above BLPOP's 1 s wait.
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
    # Tasks Redis lost (a FLUSHDB, a restart, a killed cluster's local
    # queue) wait for the recovery sweep (every minute). Lower than the
    # production advice (docs/operations.md), so a scenario converges within
    # its bound; a healthy run re-sent early is a duplicate the executor skips.
    SQUIDMESH["RECOVER_AFTER"] = 20

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "squidmesh": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
