"""Sends Segment calls to a running `tessera serve` with Segment's own Python
library (PyPI `segment-analytics-python`), as a customer's backend would:
the host points at Tessera, the write key is a Tessera `ingest` token.

Run by `host/cli/tests/segment_client.rs`, which then checks what was
stored under which person. Environment:

    TESSERA_URL        the server, e.g. http://127.0.0.1:8080
    TESSERA_WRITE_KEY  an ingest token of the tenant

Phase 1 uses a client in sync mode (one request per call, in order, as a
serverless function would); phase 2 the module-level client with the
library's own background batching, then flush(). Exit status: 0 if the
library reported no error, 1 if it did (each one printed), 3 if the library
is missing.
"""

import os
import sys
from datetime import datetime, timezone

PIP = "python3 -m pip install segment-analytics-python==2.4.0"

try:
    import segment.analytics as analytics
    from segment.analytics.client import Client
except ImportError as error:
    print(f"the Segment library is not installed ({error}); install it with: {PIP}", file=sys.stderr)
    sys.exit(3)

url = os.environ["TESSERA_URL"]
write_key = os.environ["TESSERA_WRITE_KEY"]
errors = []


def on_error(error, batch):
    errors.append(f"{error!r} ({len(batch)} messages)")


print(f"segment-analytics-python {analytics.VERSION} -> {url}")

# Phase 1: one request per call. The order matters for identity resolution.
sync = Client(write_key, host=url, sync_mode=True, on_error=on_error, max_retries=0)
try:
    # A known person: member id, device id and email together.
    sync.identify(
        user_id="u-1",
        anonymous_id="anon-1",
        traits={"email": "Ann.Lee@Example.com", "firstName": "Ann", "lastName": "Lee", "tier": "gold", "city": "Lyon"},
    )
    sync.track(
        user_id="u-1",
        event="Order Completed",
        properties={"revenue": 42.5, "currency": "EUR"},
        timestamp=datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc),
    )
    # Her device alone: attaches to her (the device id is linked to her).
    sync.track(anonymous_id="anon-1", event="Product Viewed", properties={"sku": "SKU-1"})
    # A visitor nobody knows yet, then a sign-in on that device: the new
    # member is a new person, and the device's earlier events stay with the
    # anonymous visitor (a device id never merges two people).
    sync.track(anonymous_id="anon-2", event="Product Viewed", properties={"sku": "SKU-2"})
    sync.track(anonymous_id="anon-2", event="Product Viewed", properties={"sku": "SKU-3"})
    sync.identify(user_id="u-2", anonymous_id="anon-2", traits={"email": "bob@example.com", "firstName": "Bob"})
    # An older account of the same person, then alias: the two merge.
    sync.identify(user_id="u-old", traits={"email": "bob.old@example.com"})
    sync.track(user_id="u-old", event="Signed Up")
    sync.alias(previous_id="u-old", user_id="u-2")
except Exception as error:  # the library raises on any refused request in sync mode
    errors.append(f"sync mode: {error!r}")

# Phase 2: the module-level client, batched by the library.
analytics.write_key = write_key
analytics.host = url
analytics.on_error = on_error
analytics.max_retries = 0
for i in range(150):
    analytics.track(
        user_id=f"u-{3 + i % 5}",
        event="Product Added",
        properties={"sku": f"SKU-{i:03}", "quantity": 1 + i % 3, "price": 19.9},
    )
analytics.identify(user_id="u-3", traits={"email": "carol@example.com", "firstName": "Carol"})
analytics.page(user_id="u-3", category="Docs", name="Getting Started", properties={"path": "/docs/start"})
analytics.screen(user_id="u-4", name="Home")
analytics.group(user_id="u-3", group_id="acme-inc", traits={"plan": "enterprise", "employees": 120})
analytics.flush()
analytics.shutdown()

if errors:
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
print("sent: 9 calls one by one, 154 calls batched; no error")
