"""Settings of the example project: SQLite + django-q2's ORM broker by default.

Set `DATABASE_URL=postgres://root@127.0.0.1:5432/example` to use Postgres.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "example.urls"
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
    "shop",
    "rest_framework",
    "drf_spectacular",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

if os.environ.get("DATABASE_URL"):
    import dj_database_url

    # Persistent connections for workers, with a health check per task
    # (docs/performance.md).
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ["DATABASE_URL"], conn_max_age=600, conn_health_checks=True
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("EXAMPLE_SQLITE_PATH", str(BASE_DIR / "example.sqlite3")),
            "OPTIONS": {
                # One writer at a time: WAL lets readers proceed, IMMEDIATE
                # takes the write lock up front (no deadlock on upgrade), and
                # the timeout waits for it instead of failing.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }

# The recommended squidmesh configuration of django-q2 (docs/reference/settings.md).
Q_CLUSTER = {
    "name": "squidmesh-example",
    "orm": "default",  # same database as the runs: dispatch commits with state
    "workers": 2,  # SQLite has one writer; 4 on Postgres (docs/performance.md)
    "poll": 0.05,  # idle pick-up latency; lower costs idle CPU
    "bulk": 1,  # every pulled task is leased at once: keep 1 unless steps are short
    "timeout": 30,  # default step timeout (a step's own timeout wins)
    "retry": 60,  # lease: must exceed the longest step + queue wait
    "save_limit": -1,  # squidmesh keeps its own history; skip django-q2's success rows
    "ack_failures": False,
    "max_attempts": 0,
    "catch_up": False,
}
# Try the Redis broker: EXAMPLE_REDIS_URL=redis://127.0.0.1:6379/0. Redis cannot
# join the runs' transactions, so dispatches go through squidmesh's outbox and
# the relay every qcluster runs; its lag shows on the admin run list
# (docs/operations.md#redis-broker).
if os.environ.get("EXAMPLE_REDIS_URL"):
    del Q_CLUSTER["orm"]
    Q_CLUSTER["redis"] = os.environ["EXAMPLE_REDIS_URL"]

# INLINE_STEPS (default 10): steps due at once continue in the same task.
SQUIDMESH = {
    # The recovery sweep (docs/reliability.md#recovery-sweep): every minute,
    # django-q2's scheduler re-sends the delivery of any active run that made
    # no progress for 5 minutes and whose delivery is overdue. A safety net on
    # the ORM broker; required on Redis, which can lose its queue (FLUSHDB, a
    # restart without persistence). Dead workers are the heartbeat's job.
    # `python manage.py squidmesh recover --dry-run` shows what it would do.
    "RECOVER_AFTER": 300,
    "RECOVERY_INTERVAL": 1,
    # Retention (docs/operations.md#retention): daily, delete runs that
    # finished more than 30 days ago. `manage.py squidmesh prune` does it now.
    "PRUNE_AFTER_DAYS": 30,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "run": {
            # Through "()" so that `defaults` reaches the Formatter on Python 3.11
            # too (dictConfig reads the key itself only from 3.12).
            "()": "logging.Formatter",
            "fmt": "%(levelname)s %(name)s run=%(run_id)s step=%(step)s: %(message)s",
            "defaults": {"run_id": "-", "step": "-"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "run"}},
    "loggers": {
        "squidmesh": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django_q": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
