"""Test settings; `DATABASE_URL` switches between SQLite (default) and Postgres."""

import os
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "squidmesh-tests"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "squidmesh",
    "tests.testapp",
    "shop",
    "rest_framework",
    "drf_spectacular",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
# Tests log users in by the hundred; the default PBKDF2 hasher spends about
# half a second of CPU on each (Django's own advice for test settings).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'squidmesh-tests.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL + IMMEDIATE: the test process and a qcluster subprocess write
        # the same file without "database is locked" (docs/reference/settings.md).
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so a qcluster subprocess sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "squidmesh-tests-test.sqlite3")}
# A qcluster started by the tests must use the test database pytest-django made.
if os.environ.get("SQUIDMESH_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["SQUIDMESH_TEST_DB_NAME"]

Q_CLUSTER = {
    "name": "squidmesh-tests",
    "orm": "default",
    "workers": 2,
    "poll": 0.05,
    "timeout": 8,
    "retry": 15,
    "save_limit": -1,
    "catch_up": False,
    "label": "Django Q2",
}

# Redis db for broker tests; SQUIDMESH_TEST_REDIS_DB lets parallel checkouts
# on one machine keep their queues apart.
TEST_REDIS_DB = int(os.environ.get("SQUIDMESH_TEST_REDIS_DB", "5"))

# Tests of the Redis broker start their cluster with SQUIDMESH_TEST_BROKER=redis
# (the `redis_broker` fixture points the test process at the same queue).
if os.environ.get("SQUIDMESH_TEST_BROKER") == "redis":
    del Q_CLUSTER["orm"]
    # A test may start its own redis-server (to stop it) on another port.
    port = int(os.environ.get("SQUIDMESH_TEST_REDIS_PORT", "6379"))
    Q_CLUSTER["redis"] = {"host": "127.0.0.1", "port": port, "db": TEST_REDIS_DB}
    if os.environ.get("SQUIDMESH_TEST_BROKER_CLASS"):
        Q_CLUSTER["broker_class"] = os.environ["SQUIDMESH_TEST_BROKER_CLASS"]

# No recovery sweep schedule in the test database: clusters started by tests
# would run it in the middle of other tests (tests/test_recovery.py turns it on).
SQUIDMESH: dict[str, Any] = {"INTERRUPTED_GRACE": 2, "RECOVERY_INTERVAL": None}
# "INTERVAL,TIMEOUT": heartbeats of a test cluster (tests of dead workers on Redis).
if os.environ.get("SQUIDMESH_TEST_HEARTBEAT"):
    interval, timeout = os.environ["SQUIDMESH_TEST_HEARTBEAT"].split(",")
    SQUIDMESH.update(HEARTBEAT_INTERVAL=float(interval), HEARTBEAT_TIMEOUT=float(timeout))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"squidmesh": {"handlers": ["console"], "level": "WARNING"}},
}
