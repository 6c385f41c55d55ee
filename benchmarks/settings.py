"""Benchmark settings: Postgres, the ORM (or Redis) broker and the recommended `Q_CLUSTER`.

`DATABASE_URL` picks the database (default `sm_bench`); `BENCH_Q_CLUSTER`
(JSON) overrides `Q_CLUSTER` keys, so a qcluster subprocess started by the
harness runs with exactly the settings the client side uses.
"""

import importlib.util
import json
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "squidmesh-bench"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "benchmarks.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_INSTALLED = importlib.util.find_spec("rest_framework") is not None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *(["rest_framework"] if REST_INSTALLED else []),
    "django_q",
    "squidmesh",
    "benchmarks.benchapp",
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

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/sm_bench")
# Persistent connections: without them every django-q2 dequeue, task and
# ack opens a new connection (docs/performance.md). Health checks make a
# connection that died between tasks reconnect instead of failing a task.
# `--no-health-checks` turns them off: each idle poll then costs one
# transaction instead of two (the `idle` section measures both).
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=600,
        conn_health_checks=os.environ.get("BENCH_CONN_HEALTH_CHECKS", "1") == "1",
    )
}

# The recommended squidmesh configuration of django-q2 (docs/performance.md);
# example_project/example/settings.py uses the same values.
Q_CLUSTER = {
    "name": "squidmesh-bench",
    "orm": "default",
    "workers": 4,
    "poll": 0.05,
    "bulk": 1,
    "timeout": 30,
    "retry": 60,
    "save_limit": -1,
    "ack_failures": False,
    "max_attempts": 0,
    "catch_up": False,
    # django-q2 logs two INFO lines per task; squidmesh keeps its own history.
    "log_level": "WARNING",
}
# `--broker redis`: the same cluster settings on django-q2's Redis broker
# (the machine's Redis, db `--redis-db`, default 14).
if os.environ.get("BENCH_BROKER") == "redis":
    del Q_CLUSTER["orm"]
    Q_CLUSTER["redis"] = {
        "host": os.environ.get("BENCH_REDIS_HOST", "127.0.0.1"),
        "port": int(os.environ.get("BENCH_REDIS_PORT", "6379")),
        "db": int(os.environ.get("BENCH_REDIS_DB", "14")),
    }
Q_CLUSTER.update(json.loads(os.environ.get("BENCH_Q_CLUSTER", "{}")))

SQUIDMESH = json.loads(os.environ.get("BENCH_SQUIDMESH", "{}"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"squidmesh": {"handlers": ["console"], "level": "ERROR"}},
}
