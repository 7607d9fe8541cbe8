"""`{{name}}`: a Tessera push connector. Parses lines of
`email,event_type,amount` (a header line is skipped) into events.

Every record carries a source id, so the host stores the same line once
however often the file is imported; a bad line is rejected with its row
number and reason while the good lines of the same file are kept.

The host may cut a large file into chunks of whole lines and call `parse`
once per chunk, passing `first_row`, the file line number of the chunk's
first line: rows, and the source ids made from them, are the file's line
numbers wherever the chunks were cut.
"""

from tessera_sdk import Error, FieldValue, Manifest, ParamSpec, Value, host
from tessera_sdk.connector import (
    Connector, Event, Identity, Modes, ParseOutput, Record, Rejection, export_connector,
)

U32_MAX = 2**32 - 1


class Lines(Connector):
    def describe(self):
        return Manifest.new(
            "{{name}}", "0.1.0", "Parses `email,event_type,amount` lines into events"
        ).param(
            ParamSpec.integer("first_row", "File line number of the chunk's first line (set by the host)")
            .range(1, U32_MAX)
            .default(1)
        )

    def modes(self):
        return Modes.PUSH

    def parse(self, params, data):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise Error.input(f"not UTF-8: {e}")
        # Absent when the whole file is one call.
        first_row = params.get("first_row")
        first_row = first_row.value if isinstance(first_row, Value.Integer) else 1
        now = host.now()
        out = ParseOutput(records=[], rejections=[])
        for index, line in enumerate(text.splitlines()):
            row = min(first_row + index, U32_MAX)
            line = line.strip()
            if not line or line.startswith("email,"):
                continue
            fields = [f.strip() for f in line.split(",")]
            if len(fields) != 3:
                out.rejections.append(Rejection.new(row, None, "expected 3 fields: email,event_type,amount"))
                continue
            email, event_type, amount = fields
            try:
                amount = float(amount)
            except ValueError:
                out.rejections.append(Rejection.new(row, "amount", f"`{amount}` is not a number"))
                continue
            out.records.append(
                Record.event(
                    Event(
                        source_id=f"{{name}}:{row}:{email}:{event_type}",
                        event_type=event_type,
                        at=now,
                        identities=[Identity.new("email", email)],
                        properties=[FieldValue(name="amount", value=Value.number(amount))],
                    )
                )
            )
        return out


WitWorld = export_connector(Lines)
