"""`orders-jsonl`: a push connector for an online shop's order export, one
JSON object per line (JSON Lines):

    {"order_id": "o-1001", "email": "ann@example.com", "member_id": "u-1",
     "total": 42.5, "currency": "EUR", "placed_at": "2026-03-01T10:00:00Z",
     "items": 3}

Each order becomes a `purchase` event (source id = the order id, so an
order is stored once however often the export is imported) with the
properties `amount`, `currency` and `items`, for the person named by
`email` and/or `member_id`. A line that is not JSON, misses the order id,
an identity or the total, or has an unreadable time is rejected with its
line number and the field at fault; the other lines are kept.

Rows are the file's line numbers: the host passes `first_row` when it cuts
a large file into chunks of whole lines.
"""

import json
from datetime import datetime, timezone

from tessera_sdk import Error, FieldValue, Manifest, ParamSpec, Value
from tessera_sdk.connector import (
    Connector, Event, Identity, Modes, ParseOutput, Record, Rejection, export_connector,
)

U32_MAX = 2**32 - 1


def timestamp_ms(text):
    """RFC 3339 / ISO 8601 to milliseconds since the epoch (UTC when no offset)."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return int(at.timestamp() * 1000)


class OrdersJsonl(Connector):
    def describe(self):
        return (
            Manifest.new("orders-jsonl", "1.0.0", "Orders from a shop's JSON Lines export, as purchase events")
            .param(ParamSpec.text("event_type", "The event type of an order").default("purchase"))
            .param(
                ParamSpec.integer("first_row", "File line number of the chunk's first line (set by the host)")
                .range(1, U32_MAX)
                .default(1)
            )
        )

    def modes(self):
        return Modes.PUSH

    def validate(self, params):
        if not params.text("event_type").strip():
            raise Error.config("parameter `event_type` must not be empty")

    def parse(self, params, data):
        event_type = params.text("event_type")
        first_row = params.get("first_row")
        first_row = first_row.value if isinstance(first_row, Value.Integer) else 1
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise Error.input(f"not UTF-8: {e}")
        out = ParseOutput(records=[], rejections=[])
        for index, line in enumerate(text.splitlines()):
            row = min(first_row + index, U32_MAX)
            if not line.strip():
                continue
            try:
                order = json.loads(line)
            except ValueError as e:
                out.rejections.append(Rejection.new(row, None, f"not JSON: {e}"))
                continue
            if not isinstance(order, dict):
                out.rejections.append(Rejection.new(row, None, "expected a JSON object"))
                continue
            rejection = self._reject(order, row)
            if rejection:
                out.rejections.append(rejection)
                continue
            identities = [Identity.new(kind, str(order[key]))
                          for key, kind in (("email", "email"), ("member_id", "member_id")) if order.get(key)]
            properties = [FieldValue(name="amount", value=Value.number(order["total"]))]
            if isinstance(order.get("currency"), str):
                properties.append(FieldValue(name="currency", value=Value.text(order["currency"])))
            if isinstance(order.get("items"), int) and not isinstance(order.get("items"), bool):
                properties.append(FieldValue(name="items", value=Value.integer(order["items"])))
            out.records.append(Record.event(Event(
                source_id=f"order:{order['order_id']}",
                event_type=event_type,
                at=timestamp_ms(order["placed_at"]),
                identities=identities,
                properties=properties,
            )))
        return out

    @staticmethod
    def _reject(order, row):
        order_id = order.get("order_id")
        if not isinstance(order_id, (str, int)) or isinstance(order_id, bool) or str(order_id) == "":
            return Rejection.new(row, "order_id", "missing order id")
        if not order.get("email") and not order.get("member_id"):
            return Rejection.new(row, "email", "no email or member_id to say whose order it is")
        total = order.get("total")
        if isinstance(total, bool) or not isinstance(total, (int, float)):
            return Rejection.new(row, "total", f"`{total}` is not a number")
        placed_at = order.get("placed_at")
        try:
            timestamp_ms(placed_at)
        except (TypeError, ValueError, AttributeError):
            return Rejection.new(row, "placed_at", f"`{placed_at}` is not an ISO 8601 time")
        return None


WitWorld = export_connector(OrdersJsonl)
