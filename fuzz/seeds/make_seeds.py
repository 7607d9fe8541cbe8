#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from
the repository's own examples. Run from anywhere (optional argument: the
path of a real segment component, e.g. plain_segment.wasm of the guest
build); it rewrites only the files
it names (seed-*), leaving inputs the fuzzer found (and regressions) alone.

Each target's first input byte selects a mode (see the target's header
comment); the seeds cover every mode."""

import hashlib
import json
import random
import struct
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent.parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)


def head_lines(path, n, start=0):
    """The raw bytes of lines start..start+n of a file (line ends kept)."""
    lines = path.read_bytes().split(b"\n")
    return b"\n".join(lines[start : start + n]) + b"\n"


# ---- csv: option byte = export (0-3) | 4 for a later chunk --------------------
LARGE = REPO / "examples/retail/large"
EXPORTS = ["loyalty_members.csv", "stores_cn.csv", "stores_eu.csv", "stores_us.csv"]
for i, name in enumerate(EXPORTS):
    path = LARGE / name
    write("csv", f"{i}-head", bytes([i]) + head_lines(path, 8))
    # A later chunk: rows 40.. of the file, first_row = 2 + 38.
    write("csv", f"{i}-chunk", bytes([i | 4, 38]) + head_lines(path, 6, start=39))
write(
    "csv",
    "quoted",
    bytes([3])
    + b'Receipt #,Store,Store Address,Loyalty #,Phone,Purchased At,Total,Currency,Items,Category,Notes\r\n'
    + b'R1,SoHo,"120 Prince St,\r\nNew York","HD1",+1 404 555 0148,01/01/2026 10:06 -0500,"1,137.56",USD,2,Shoes,"say ""hi"""\r\n'
    + b'R2,SoHo,"unclosed,,,\r\n',
)
write(
    "csv",
    "bad-values",
    bytes([0])
    + b"member_id,phone,email,name,tier,birthday,city,member_since\n"
    + b"HD1,notaphone,a@b,Ann,gold,31/02/2024,Oslo,2012-13-01\n"
    + b",,,,,,,\n"
    + b"HD2,+47 22 00 00 00,x@example.com,Bo,blue,1980-02-29,Oslo,2012-01-01,extra\n",
)

# ---- ndjson: the data itself --------------------------------------------------
events = (REPO / "examples/retail/events.ndjson").read_bytes().split(b"\n")
web = (LARGE / "web_events.ndjson").read_bytes().split(b"\n")
for name, lines in [("events", events), ("web", web)]:
    kinds = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            kind = json.loads(line).get("type")
        except ValueError:
            kind = "invalid"  # the example holds bad lines on purpose
        kinds.setdefault(kind, []).append(line)
    for kind, picked in sorted(kinds.items(), key=lambda kv: str(kv[0])):
        write("ndjson", f"{name}-{kind}", b"\n".join(picked[:3]) + b"\n")
write(
    "ndjson",
    "bad-lines",
    b"\xef\xbb\xbf"
    + b'{"id":"e-1","type":"track","event":"page_view","at":"2026-11-01T10:00:00Z","identities":{"email":"a@example.com"},"properties":{"path":"/shoes","price":59.9}}\r\n'
    + b"\r\n   \n"
    + b'{"id":"e-2","type":"track"}\n'
    + b"not json\n"
    + b'{"id":"t-1","type":"identify","identities":{"member_id":"M-1"},"traits":{"tier":"gold"}}\n'
    + b'{"id":"x","type":"track","event":"e","at":"2026-13-40T25:61:61Z","identities":{"email":"a@example.com"}}',
)

# ---- segment_ingest: endpoint byte (0 events, 1 identify, 2 track, 3 page,
# 4 screen, 5 group, 6 alias, 7+ batch) ----------------------------------------
MESSAGES = {
    1: {"userId": "user-1", "traits": {"email": "ann@example.com", "name": "Ann", "plan": "gold"},
        "context": {"ip": "203.0.113.9"}, "timestamp": "2025-12-31T10:00:00Z", "messageId": "m-1"},
    2: {"userId": "user-1", "event": "Order Completed",
        "properties": {"revenue": 42.5, "currency": "EUR", "products": [{"sku": "A-1"}]},
        "timestamp": "2025-12-31T10:00:00.123+01:00", "messageId": "m-2"},
    3: {"anonymousId": "anon-9", "name": "Shoes", "properties": {"path": "/shoes", "url": "https://shop.example/shoes"},
        "sentAt": "2025-12-31T10:00:05Z", "originalTimestamp": "2025-12-31T10:00:00Z"},
    4: {"userId": "user-2", "name": "Cart", "properties": {"items": 3}},
    5: {"userId": "user-1", "groupId": "acme-co", "traits": {"industry": "retail"}},
    6: {"previousId": "anon-9", "userId": "user-1"},
}
for endpoint, message in MESSAGES.items():
    write("segment_ingest", f"kind-{endpoint}", bytes([endpoint]) + json.dumps(message).encode())
typed = dict(MESSAGES[2], type="track")
write("segment_ingest", "events", bytes([0]) + json.dumps(typed).encode())
kinds = ["identify", "track", "page", "screen", "group", "alias"]
batch = [dict(MESSAGES[i + 1], type=kinds[i]) for i in range(6)]
batch.append({"type": "track", "userId": "user-3"})  # no event name
batch.append({"type": "launch"})
write(
    "segment_ingest",
    "batch",
    bytes([7]) + json.dumps({"batch": batch, "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
                             "sentAt": "2025-12-31T10:00:10Z"}).encode(),
)
write("segment_ingest", "bad-json", bytes([7]) + b'{"batch": [{"type": "track", "userId": ')

# ---- rules: the rule text (docs/rules.md's examples) ---------------------------
rules_doc = (REPO / "docs/rules.md").read_text()
rules = []
block = None
for line in rules_doc.splitlines():
    if line.startswith("```"):
        if block is not None:
            rules.append("\n".join(block))
            block = None
        elif line.strip() == "```text":
            block = []
        continue
    if block is not None:
        block.append(line)
    elif line.startswith("|"):
        # Rules in the tables, as inline code spans.
        for span in line.split("`")[1::2]:
            if any(word in span for word in ("trait.", "(", "segment")):
                rules.append(span)
for i, rule in enumerate(dict.fromkeys(rules)):
    write("rules", f"doc-{i:02}", rule.encode())

# ---- bundle: mode byte (odd: re-signed by the fixed key) + a bundle file -------
MAGIC = b"\x89TSB\r\n\x1a\n"


def leb(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def name(text):
    return leb(len(text)) + text.encode()


def tiny_component(export):
    """The smallest component the bundle checks accept: the contract version
    marker and a top-level export naming the world (not instantiable)."""
    custom = name("tessera:wit-version") + b"0.1.0"
    exports = leb(1) + b"\x00" + name(export) + b"\x01" + leb(0) + b"\x00"
    return (b"\x00asm\x0d\x00\x01\x00"
            + b"\x00" + leb(len(custom)) + custom
            + b"\x0b" + leb(len(exports)) + exports)


def bundle(plugins):
    manifest = {
        "publisher": "Halden Retail",
        "version": "1.0.0",
        "plugins": [{
            "name": plugin, "kind": kind, "wit_version": "0.1.0",
            "description": f"the {plugin} plugin",
            "component": {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)},
            "permissions": {"traits": ["total_spend"], "events": ["purchase"], "pii": ["email"],
                            "purposes": ["marketing"], "state_quota": 0},
            "limits": {"memory_bytes": 16777216},
            "parameters": [{"name": "threshold", "kind": "number", "required": True,
                            "min": 0, "max": 100}],
        } for plugin, kind, body in plugins],
    }
    sections = [(1, json.dumps(manifest).encode())]
    for plugin, _, body in plugins:
        sections.append((2, name_byte(plugin) + hashlib.sha256(body).digest() + body))
    payload = b"".join(bytes([tag]) + struct.pack("<I", len(body)) + body for tag, body in sections)
    return MAGIC + struct.pack("<HQ", 1, 18 + len(payload)) + payload


def name_byte(text):
    return bytes([len(text)]) + text.encode()


segment = ("threshold", "segment", tiny_component("evaluate"))
strategy = ("greedy", "strategy", tiny_component("decide"))
connector = ("ndjson", "connector", tiny_component("supports"))
for mode in (0, 1):
    write("bundle", f"{mode}-segment", bytes([mode]) + bundle([segment]))
    write("bundle", f"{mode}-three", bytes([mode]) + bundle([segment, strategy, connector]))
write("bundle", "1-wrong-kind", bytes([1]) + bundle([("threshold", "strategy", tiny_component("evaluate"))]))
# A real component (tests/guests' plain_segment, built by host/guests), if
# its path is given: nested modules, WASI imports, the SDK's marker.
if len(sys.argv) > 1:
    real = Path(sys.argv[1]).read_bytes()
    write("bundle", "1-real", bytes([1]) + bundle([("plain", "segment", real)]))

# ---- subject_token: mode byte (even: a token; odd: claims JSON tagged here) ----
rng = random.Random(12)
tag = "".join(rng.choice("0123456789abcdef") for _ in range(64))
claims = {"v": 1, "sub": "s-0123", "jti": "0123456789abcdef0123456789abcdef",
          "iat": 1767225600000, "exp": 4102444800000}
import base64
payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
write("subject_token", "0-shape", b"\x00tst_" + b"acme".hex().encode() + b"_" + payload + b"_" + tag.encode())
write("subject_token", "0-api-token", b"\x00tsk_0123456789abcdef")
write("subject_token", "1-valid", b"\x01" + json.dumps(claims, separators=(",", ":")).encode())
write("subject_token", "1-expired", b"\x01" + json.dumps(dict(claims, exp=1000)).encode())
write("subject_token", "1-bad-jti", b"\x01" + json.dumps(dict(claims, jti="XYZ")).encode())
write("subject_token", "1-extra", b"\x01" + json.dumps(dict(claims, role="operator")).encode())

# ---- plugin_output: selector byte (0 manifest, 1 plan, 2 memberships,
# 3 strategy) and bytes the target builds the output from -----------------------
for selector in range(4):
    for i in range(3):
        write("plugin_output", f"{selector}-{i}",
              bytes([selector]) + bytes(rng.randrange(256) for _ in range(64 * (i + 1))))
