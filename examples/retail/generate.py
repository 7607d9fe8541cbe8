#!/usr/bin/env python3
"""Generates events.ndjson: a small retail dataset mixing online activity (web
and app events keyed by email and device) with offline store purchases keyed
by loyalty member id, linked for some customers by an alias record. A few
malformed lines are included on purpose: importers must reject them with a
reason and keep the rest. Deterministic: same seed, same file."""

import json
import random

SEED = 20261204
CUSTOMERS = 160
START = 1_777_593_600_000  # 2026-05-01T00:00:00Z
DAY = 86_400_000

CATEGORIES = ["shoes", "outerwear", "bags", "accessories", "sportswear"]
STORES = ["SH-001", "SH-014", "BJ-003", "GZ-007"]
CITIES = ["Shanghai", "Beijing", "Guangzhou", "Shenzhen", "Hangzhou"]


def main():
    rng = random.Random(SEED)
    lines = []
    n = 0

    def emit(record):
        nonlocal n
        n += 1
        record = {"id": f"r-{n:05d}", **record}
        lines.append((record.get("at", START), json.dumps(record, ensure_ascii=False, separators=(",", ":"))))

    for c in range(1, CUSTOMERS + 1):
        email = f"customer{c:03d}@example.com"
        member = f"M{100000 + c}"
        device = f"dev-{c:03d}"
        online = rng.random() < 0.8
        offline = rng.random() < 0.6 or not online
        spender = rng.random()  # how much this customer buys
        if online and offline:
            emit({"type": "alias", "at": START, "identities": {"email": email, "member_id": member}})
        ids_online = {"email": email, "device_id": device}
        ids_offline = {"member_id": member}
        emit({
            "type": "identify",
            "at": START,
            "identities": ids_online if online else ids_offline,
            "traits": {"city": rng.choice(CITIES), "tier": rng.choice(["basic", "silver", "gold"])},
        })
        if online:
            for _ in range(rng.randint(2, 25)):
                at = START + rng.randint(0, 180) * DAY + rng.randint(0, DAY - 1)
                category = rng.choice(CATEGORIES)
                emit({"type": "track", "event": "page_view", "at": at, "identities": ids_online,
                      "properties": {"path": f"/{category}", "channel": rng.choice(["web", "app"])}})
                if rng.random() < 0.3:
                    emit({"type": "track", "event": "add_to_cart", "at": at + 60_000,
                          "identities": ids_online, "properties": {"category": category}})
                    if rng.random() < 0.35 + 0.5 * spender:
                        amount = round(rng.uniform(30, 180) * (1 + 3 * spender), 2)
                        emit({"type": "track", "event": "purchase", "at": at + 300_000,
                              "identities": ids_online,
                              "properties": {"amount": amount, "category": category, "channel": "web"}})
        if offline:
            for _ in range(rng.randint(0, 6)):
                at = START + rng.randint(0, 180) * DAY + rng.randint(9, 21) * 3_600_000
                amount = round(rng.uniform(50, 400) * (0.5 + 2 * spender), 2)
                emit({"type": "track", "event": "store_purchase", "at": at, "identities": ids_offline,
                      "properties": {"amount": amount, "store_id": rng.choice(STORES),
                                     "category": rng.choice(CATEGORIES)}})

    lines.sort(key=lambda pair: pair[0])
    out = [line for _, line in lines]
    # Malformed lines, as real exports have them.
    out.insert(40, '{"type":"track","event":"page_view","at":"yesterday","identities":{"email":"x@example.com"}}')
    out.insert(90, '{"id":"broken-1","type":"track","event":"purchase"')
    out.insert(150, '{"type":"track","event":"purchase","at":1777600000000,"identities":{}}')
    with open("events.ndjson", "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
