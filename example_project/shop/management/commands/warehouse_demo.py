"""Run `shop.warehouse_sync` against a local fake warehouse that fails once, through a real qcluster."""

from __future__ import annotations

import sys
import time

from django.core.management import call_command

import squidmesh
from shop.management.commands.demo import EXAMPLE_DIR
from shop.management.commands.demo import Command as DemoCommand
from shop.warehouse import FakeWarehouse
from squidmesh.testing import Cluster


class Command(DemoCommand):
    help = __doc__

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--port",
            type=int,
            default=18765,
            help="Warehouse port on 127.0.0.1 (0: any free port).",
        )
        parser.add_argument(
            "--fail-first",
            type=int,
            default=1,
            help="How many requests per order the warehouse answers with 503.",
        )

    def handle(self, *args, timeout: float, port: int, fail_first: int, **options):
        call_command("migrate", verbosity=0)
        warehouse = FakeWarehouse(port=port, fail_first=fail_first, report=self.stdout.write)
        warehouse.start()
        self.stdout.write(f"Fake warehouse listening on {warehouse.url}")
        self.stdout.write("Starting a qcluster (django-q2 worker) …")
        # The worker finds the warehouse through the allow-list, not the payload.
        cluster = Cluster(
            settings_module="example.settings",
            cwd=EXAMPLE_DIR,
            env={"SHOP_WAREHOUSE_URL": warehouse.url},
        ).start()
        try:
            run = squidmesh.start_run(
                "shop.warehouse_sync",
                {
                    "order_ref": f"WH-{int(time.time())}",
                    "lines": [{"sku": "SQUID-1", "quantity": 2}],
                },
            )
            self.stdout.write(f"started {run.workflow} run {run.pk}")
            ok = self.follow([run.pk], timeout)
        finally:
            cluster.stop()
            warehouse.stop()
        self.print_history(squidmesh.inspect_run(run.pk, include_history=True))
        if not ok:
            self.stderr.write("The run did not finish in time; cluster log:\n" + cluster.output())
            sys.exit(1)
