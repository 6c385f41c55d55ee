"""Example workflows: every DSL feature in a small order-fulfilment domain."""

import squidmesh
from shop import steps
from shop.warehouse import allowed_warehouses
from squidmesh import Payload, Retry, Step, fields

# Order.amount_cents is a PositiveIntegerField: refuse at the start what its
# column could not store, rather than fail inside reserve_stock.
AMOUNT_CENTS = {"min_value": 0, "max_value": 2_147_483_647}


class OrderPayload(Payload):
    order_ref = fields.String()
    amount_cents = fields.Integer(**AMOUNT_CENTS)
    card = fields.Choice(["ok", "stolen"], default="ok")
    declines = fields.Integer(default=0, help_text="How often the fake gateway declines.")


@squidmesh.register
class OrderFulfilment(squidmesh.Workflow):
    """Reserve stock, wait for fraud screening, charge with retries, then ship."""

    name = "shop.order_fulfilment"
    triggers = [
        squidmesh.manual("checkout", payload=OrderPayload, default=True),
        squidmesh.manual(
            "backoffice",
            payload={
                "order_ref": fields.String(),
                "amount_cents": fields.Integer(**AMOUNT_CENTS),
                "card": fields.Choice(["ok", "stolen"], default="ok"),
                "declines": fields.Integer(default=0),
                "operator": fields.String(required=False),
                "tags": fields.List(default=[]),
                "metadata": fields.Mapping(default={}),
            },
        ),
    ]

    reserve_stock = Step(steps.reserve_stock, on_ok="fraud_screening")
    fraud_screening = squidmesh.wait(1, on_ok="announce_charge")
    announce_charge = squidmesh.log("charging order {order_ref}", on_ok="charge_card")
    charge_card = Step(
        steps.ChargeCard,
        retry=Retry(max_attempts=3, backoff_min=0.5, backoff_max=4, jitter=True),
        timeout=10,
        on_ok="ship",
        on_error="refund_and_notify",
    )
    ship = Step(steps.ship)
    refund_and_notify = Step(steps.refund_and_notify)


@squidmesh.register
class DailyReport(squidmesh.Workflow):
    """Summarise shipped orders; runs nightly (cron) or on demand."""

    name = "shop.daily_report"
    triggers = [
        squidmesh.cron(
            "0 6 * * *",
            name="nightly",
            timezone="Europe/Paris",
            payload={"report_date": fields.Date(default=squidmesh.TODAY)},
        ),
        squidmesh.manual(
            "on_demand", payload={"report_date": fields.Date(default=squidmesh.TODAY)}
        ),
    ]

    compile_report = Step(steps.compile_report, on_ok="announce")
    announce = squidmesh.log("report for {report_date}: {shipped_orders} shipped", level="info")


@squidmesh.register
class WarehouseSync(squidmesh.Workflow):
    """Tell the warehouse about an order over HTTP (the tool adapter), retrying its hiccups."""

    name = "shop.warehouse_sync"
    triggers = [
        squidmesh.manual(
            payload={
                "order_ref": fields.String(),
                "lines": fields.List(default=[]),
                # A name from settings.SHOP_WAREHOUSES, never a URL (docs/tools.md).
                "warehouse": fields.Choice(sorted(allowed_warehouses()), default="local"),
                "timeout": fields.Float(default=5.0),
            }
        )
    ]

    notify_warehouse = Step(
        steps.notify_warehouse,
        retry=Retry(max_attempts=4, backoff_min=0.5, backoff_max=5),
        timeout=8,
        on_ok="announce",
    )
    announce = squidmesh.log("warehouse accepted {order_ref}", level="info")
