"""Command line: `python -m verification smoke|resilience|soak [--short] [options]`."""

from __future__ import annotations

import argparse
import sys

# Long variants are the defaults; `--short` is what CI runs (a minute or two each).
SHORT = {
    "smoke": {},
    "resilience": {"rounds": 2, "runs": 12, "burst": 6},
    "soak": {"duration": 45.0, "rate": 1.5},
}
# On Redis the short resilience check needs a round per fault: kill, flush, restart.
SHORT_REDIS = {"resilience": {"rounds": 3, "redis_downtime": 10.0}}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m verification", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--short", action="store_true", help="the bounded variant CI runs")
        sub.add_argument("--seed", type=int, default=1, help="seed of the load and fault choices")
        sub.add_argument(
            "--bound",
            type=float,
            default=180.0,
            help="seconds every run gets to reach a terminal state after the last fault",
        )
        sub.add_argument("-v", "--verbose", action="store_true", help="cluster logs on failure")
        sub.add_argument(
            "--broker",
            choices=("orm", "redis"),
            default="orm",
            help="django-q2 broker of the clusters (redis: a server the harness starts itself)",
        )
        sub.add_argument(
            "--redis-port",
            type=int,
            default=6390,
            help="free port for the harness's own redis-server (--broker redis)",
        )
        sub.add_argument("--redis-db", type=int, default=0, help="Redis db number (--broker redis)")
        return sub

    command("smoke", "run every example workflow to its expected end through a real cluster")
    resilience = command(
        "resilience", "SIGKILL all clusters / restart Postgres with runs in every situation"
    )
    resilience.add_argument("--rounds", type=int, default=8, help="faults to inject")
    resilience.add_argument("--runs", type=int, default=24, help="runs started per round")
    resilience.add_argument(
        "--burst", type=int, default=10, help="runs started just before each fault (queued)"
    )
    resilience.add_argument(
        "--downtime", type=float, default=1.0, help="seconds between a kill and the restart"
    )
    resilience.add_argument(
        "--no-postgres-restart",
        dest="postgres_restart",
        action="store_false",
        help=(
            "no PostgreSQL restart: for development on a shared machine (a restart breaks "
            "every other user of the server); CI and releases run the full plan"
        ),
    )
    resilience.add_argument(
        "--redis-downtime",
        type=float,
        default=15.0,
        help="seconds the harness's Redis server stays down in a restart fault (--broker redis)",
    )
    soak = command("soak", "mixed load on two clusters with random SIGKILLs of one")
    soak.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    soak.add_argument("--rate", type=float, default=1.5, help="runs started per second")
    soak.add_argument("--runs", type=int, default=100_000, help="cap on runs started")
    soak.add_argument(
        "--kill-every",
        type=float,
        nargs=2,
        default=(8.0, 20.0),
        metavar=("MIN", "MAX"),
        help="seconds between SIGKILLs of one cluster (uniform)",
    )
    return root


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    options = parser().parse_args(arguments)
    if options.short:
        # Explicit options win over the short preset.
        defaults = parser().parse_args([options.command])
        preset = dict(SHORT[options.command])
        if options.broker == "redis":
            preset.update(SHORT_REDIS.get(options.command, {}))
        for name, value in preset.items():
            if getattr(options, name) == getattr(defaults, name):
                setattr(options, name, value)

    from verification import broker

    broker.configure(options.broker, redis_port=options.redis_port, redis_db=options.redis_db)
    redis = broker.RedisServer(options.redis_port) if options.broker == broker.REDIS else None
    if redis is not None:
        redis.start()
    try:
        return run_scenario(options, redis)
    finally:
        if redis is not None:
            redis.stop()


def run_scenario(options: argparse.Namespace, redis) -> int:
    from verification.harness import prepare_database, setup_django

    setup_django()
    database = prepare_database()
    where = f", Redis 127.0.0.1:{redis.port} db {options.redis_db}" if redis else ""
    print(
        f"{options.command}: database {database}, broker {options.broker}{where}, "
        f"seed {options.seed}",
        flush=True,
    )
    options.redis_server = redis
    if options.command == "smoke":
        from verification import smoke as scenario
    elif options.command == "resilience":
        from verification import resilience as scenario
    else:
        from verification import soak as scenario
    return scenario.run(options)


if __name__ == "__main__":
    sys.exit(main())
