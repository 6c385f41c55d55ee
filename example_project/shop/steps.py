"""Step implementations of the example workflows."""

import squidmesh
from shop.models import Order
from shop.warehouse import allowed_warehouses
from squidmesh.tools import HTTP, ToolError, invoke


def reserve_stock(data, ctx):
    """Create (or find) the order: idempotent on its reference, so a retry is harmless."""
    order, _ = Order.objects.get_or_create(
        reference=data["order_ref"], defaults={"amount_cents": data["amount_cents"]}
    )
    ctx.logger.info("reserved stock for %s", order.reference)
    return {"order_id": order.pk}


class ChargeCard:
    """Charge the card; the fake gateway declines the first `declines` calls."""

    def run(self, data, ctx):
        order = Order.objects.get(pk=data["order_id"])
        Order.objects.filter(pk=order.pk).update(gateway_calls=order.gateway_calls + 1)
        if data["card"] == "stolen":
            raise squidmesh.TerminalFailure("card reported stolen", details={"card": "stolen"})
        if ctx.attempt <= data["declines"]:
            raise squidmesh.StepFailure(
                f"gateway declined (attempt {ctx.attempt})", details={"code": "try_again"}
            )
        return {"charge_id": f"ch_{order.reference}_{ctx.attempt}"}


def ship(data, ctx):
    Order.objects.filter(pk=data["order_id"]).update(status="shipped")
    return {"shipped": True}


def refund_and_notify(data, ctx):
    Order.objects.filter(pk=data["order_id"]).update(status="payment_failed")
    return {"customer_notified": True}


def compile_report(data, ctx):
    shipped = Order.objects.filter(status="shipped").count()
    return {"report_date": data["report_date"], "shipped_orders": shipped}


def notify_warehouse(data, ctx):
    """POST the order to the warehouse; it de-duplicates retries on `Idempotency-Key`.

    The URL comes from the allow-list `settings.SHOP_WAREHOUSES`, looked up
    when the step runs, so a changed setting applies to runs already started.
    """
    url = allowed_warehouses().get(data["warehouse"])
    if url is None:
        raise squidmesh.TerminalFailure(
            f"warehouse {data['warehouse']!r} is not in SHOP_WAREHOUSES",
            details={"allowed": sorted(allowed_warehouses())},
        )
    try:
        result = invoke(
            HTTP,
            {
                "method": "POST",
                "url": url,
                "json": {"order_ref": data["order_ref"], "lines": data["lines"]},
                "timeout": data["timeout"],
                "idempotency_key": True,  # run_id:step, the same on every attempt
            },
            ctx,
        )
    except ToolError as error:
        # 429/5xx/timeouts retry under the step's policy; a 4xx fails the step.
        raise error.as_step_failure() from error
    return {"warehouse_status": result.payload["status"], "warehouse_reply": result.payload["body"]}
