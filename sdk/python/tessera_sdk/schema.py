"""The tenant's schema, as far as the operator granted it
(`tessera:plan/schema`): for segments that plan, to plan columns of the
right kind (the Rust SDK's `tessera_sdk::schema::trait_kind`).

A segment that defines `plan` is built for `tessera:plan/planned-segment`,
which imports it; other plugins do not have it.
"""

try:
    from wit_world.imports import schema as _schema
except ImportError:  # not a planned segment
    _schema = None

__all__ = ["trait_kind"]


def trait_kind(name):
    """The `ValueKind` of the tenant's trait `name` as its schema declares
    it, if this plugin may read it; None if the trait is unknown or not
    granted. Answers in `plan` and `evaluate` of a segment that plans."""
    if _schema is None:
        from .core import Error

        raise Error.internal(
            "the schema is only for segments that plan: define `plan` in the segment"
        )
    return _schema.trait_kind(name)
