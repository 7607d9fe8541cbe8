"""`threshold`, the Python twin of plugins/threshold (Rust).

Subjects whose `total_spend` compares to a threshold, e.g. "total_spend >= 500".
It must behave exactly like the Rust plugin and the Rust SDK helpers it uses
(`Params::number`, `Params::text`, `Batch::field`, `ColumnRef::number`):
same manifest, same results, same error variants and messages.

Built with componentize-py for the `segment` world of tessera:plugin@0.1.0;
see ../build.py.
"""

import math
from operator import and_

import wit_world
from componentize_py_types import Err
from wit_world.imports.segments import Memberships
from wit_world.imports.types import (
    ColumnData_Boolean,
    ColumnData_Integer,
    ColumnData_Number,
    ColumnData_Text,
    ColumnData_TextList,
    ColumnData_Timestamp,
    Error_Internal,
    Error_InvalidConfig,
    Error_InvalidInput,
    FieldClass,
    FieldSpec,
    Manifest,
    ParamSpec,
    Value_Integer,
    Value_Null,
    Value_Number,
    Value_Text,
    ValueKind,
)

# The one numeric field this rule reads (as in the Rust plugin).
FIELD = "total_spend"

# Comparisons as bound methods of the threshold `t`, applied to a row value
# `v`: `v >= t` is `t <= v`, and so on. IEEE semantics (NaN compares false)
# are the same as Rust's f64 operators.
_OPS = {
    ">=": float.__le__,
    ">": float.__lt__,
    "<=": float.__ge__,
    "<": float.__gt__,
    "==": float.__eq__,
}


def _config(message):
    return Err(Error_InvalidConfig(message))


def _get(params, name):
    """`Params::get`: the first parameter with this name, unless it is null."""
    for p in params:
        if p.name == name:
            return None if isinstance(p.value, Value_Null) else p.value
    return None


def _number(params, name):
    """`Params::number`: a number; integers are widened (as `i64 as f64`)."""
    value = _get(params, name)
    if value is None:
        raise _config(f"parameter `{name}` is required")
    if isinstance(value, Value_Number):
        return float(value.value)
    if isinstance(value, Value_Integer):
        return float(value.value)
    raise _config(f"parameter `{name}` must be a number")


def _op(params):
    """The comparison `op` names (default `>=`), as a function of the threshold."""
    value = _get(params, "op")
    if value is None:
        op = ">="
    elif isinstance(value, Value_Text):
        op = value.value
    else:
        raise _config("parameter `op` must be a text")
    cmp = _OPS.get(op)
    if cmp is None:
        raise _config(f"parameter `op` must be one of >=, >, <=, <, ==; got `{op}`")
    return cmp


def _column_len(data):
    if isinstance(data, ColumnData_Text):
        return len(data.value.codes)
    if isinstance(data, ColumnData_TextList):
        return max(len(data.value.offsets) - 1, 0)
    return len(data.value)


def _manifest():
    return Manifest(
        name="threshold",
        version="0.1.0",
        description="Subjects whose total spend compares to a threshold (>=, >, <=, <, ==).",
        parameters=[
            ParamSpec(
                name="threshold",
                kind=ValueKind.NUMBER,
                description="The value to compare with",
                required=True,
                default=None,
                min=None,
                max=None,
                choices=[],
            ),
            ParamSpec(
                name="op",
                kind=ValueKind.TEXT,
                description="The comparison",
                required=False,
                default=Value_Text(">="),
                min=None,
                max=None,
                choices=[">=", ">", "<=", "<", "=="],
            ),
        ],
        fields=[FieldSpec(name=FIELD, kind=ValueKind.NUMBER, class_=FieldClass.STANDARD)],
        aggregates=[],
        purposes=["email_marketing", "personalization", "analytics"],
    )


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return _manifest()

    def validate(self, params):
        threshold = _number(params, "threshold")
        if not math.isfinite(threshold):
            raise _config("parameter `threshold` must be a finite number")
        _op(params)

    def evaluate(self, params, batch):
        threshold = _number(params, "threshold")
        test = _op(params).__get__(threshold)  # bound: test(v) == (v OP threshold)
        rows = batch.rows

        # `Batch::field`: FIELD is the first (only) declared field.
        if not batch.fields:
            raise Err(Error_InvalidInput(f"the host sent no column for `{FIELD}`"))
        column = batch.fields[0]
        data = column.data
        present = column.present

        # `ColumnRef::new`: one value per row, and `present` empty or per row.
        n = _column_len(data)
        if n != rows or (present and len(present) != rows):
            raise Err(Error_InvalidInput(f"column `{FIELD}` has {n} values for {rows} rows"))

        # `ColumnRef::number`: numbers as they are; integers, timestamps and
        # booleans widened to f64; text columns have no number (never members).
        if isinstance(data, ColumnData_Number):
            values = map(test, data.value)
        elif isinstance(data, (ColumnData_Integer, ColumnData_Timestamp, ColumnData_Boolean)):
            values = map(test, map(float, data.value))
        else:
            return Memberships(member=bytes(rows), scores=[], tiers=None)

        # A missing row (present[row] == 0) is never a member. One pass over
        # the lazy maps; memberships leave as bytes (1 = member).
        member = bytes(map(and_, present, values)) if present else bytes(values)
        if len(member) != rows:  # the Rust adapter's own check; cannot fail here
            raise Err(Error_Internal(f"evaluate returned {len(member)} memberships for {rows} rows"))
        return Memberships(member=member, scores=[], tiers=None)
