"""The Tessera plugin SDK for Python: subclass one base class per world
(`Connector`, `Segment`, `Strategy`) and export it with one call.

The SDK's version is the WIT contract version (`WIT_VERSION`); its build
helper (`python -m tessera_sdk.build`) embeds it in the component so the host
picks matching bindings before it instantiates anything.

    from tessera_sdk.segment import Segment, Memberships, export_segment
    from tessera_sdk import Manifest, ParamSpec, ValueKind, FieldClass

    class BigSpenders(Segment):
        def describe(self):
            return (Manifest.new("big-spenders", "1.0.0", "Subjects who spent more than a threshold")
                    .field("total_spend", ValueKind.NUMBER, FieldClass.STANDARD)
                    .param(ParamSpec.number("threshold", "Minimum spend").required()))

        def evaluate(self, params, batch):
            threshold = params.number("threshold")
            spend = batch.field("total_spend")
            return Memberships.from_fn(batch.rows(), lambda row: (spend.number(row) or 0) >= threshold)

    WitWorld = export_segment(BigSpenders)

The names are the Rust SDK's (`Params.number`, `Batch.field`,
`ColumnRef.number`, `Error.config`, ...), in Python's spelling.

Everything but the constants below is loaded on first use: the helpers need
the bindings componentize-py generates (`wit_world`), which exist only while
a component is built, while `python -m tessera_sdk.build` runs without them.
"""

WIT_VERSION = "0.1.0"
"""The WIT contract version this SDK implements (`tessera:plugin@0.1.0`)."""

WIT_VERSION_SECTION = "tessera:wit-version"
"""The custom section the host reads the contract version from."""

__version__ = WIT_VERSION

_CORE = (
    "Value", "ValueKind", "FieldValue", "FieldClass", "FieldSpec", "AggregateFn", "AggregateSpec",
    "Manifest", "ParamSpec", "Error", "Params", "Batch", "ColumnRef", "Column", "ColumnData",
    "ProfileBatch", "TextColumn", "TextListColumn", "value_of", "Needs", "EventQuery",
    "QueryColumns",
)

__all__ = ["WIT_VERSION", "WIT_VERSION_SECTION", *_CORE, "host", "state", "schema"]


def __getattr__(name):
    if name in _CORE:
        from . import core

        return getattr(core, name)
    if name in ("host", "state", "schema"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
