"""Values, errors, parameters, manifests and columnar batches: what every
world shares, as the Rust SDK names them (`Params.number`, `Batch.field`,
`ColumnRef.number`, `Manifest.new(...).field(...)`, `Error.config`).

Needs the bindings componentize-py generates (`wit_world`), so it is only
importable inside a component build, never by `tessera_sdk.build`.
"""

from componentize_py_types import Err
from wit_world.imports import types as _t

ValueKind = _t.ValueKind
FieldValue = _t.FieldValue
FieldClass = _t.FieldClass
FieldSpec = _t.FieldSpec
AggregateFn = _t.AggregateFn
AggregateSpec = _t.AggregateSpec
Column = _t.Column
ColumnData = _t.ColumnData
ProfileBatch = _t.ProfileBatch
TextColumn = _t.TextColumn
TextListColumn = _t.TextListColumn

__all__ = [
    "Value", "ValueKind", "FieldValue", "FieldClass", "FieldSpec", "AggregateFn", "AggregateSpec",
    "Manifest", "ParamSpec", "Error", "Params", "Batch", "ColumnRef", "Column", "ColumnData",
    "ProfileBatch", "TextColumn", "TextListColumn", "value_of", "Needs", "EventQuery",
    "QueryColumns",
]


class Value:
    """Constructors of the WIT `value` variant (`Value.number(1.5)` is the
    Rust SDK's `Value::Number(1.5)`); `value_of` reads one back."""

    Null = _t.Value_Null
    Boolean = _t.Value_Boolean
    Integer = _t.Value_Integer
    Number = _t.Value_Number
    Text = _t.Value_Text
    Timestamp = _t.Value_Timestamp
    TextList = _t.Value_TextList

    @staticmethod
    def null():
        return _t.Value_Null()

    @staticmethod
    def boolean(b):
        return _t.Value_Boolean(bool(b))

    @staticmethod
    def integer(i):
        return _t.Value_Integer(int(i))

    @staticmethod
    def number(x):
        return _t.Value_Number(float(x))

    @staticmethod
    def text(s):
        return _t.Value_Text(str(s))

    @staticmethod
    def timestamp(ms):
        """Milliseconds since the Unix epoch, UTC."""
        return _t.Value_Timestamp(int(ms))

    @staticmethod
    def text_list(items):
        return _t.Value_TextList([str(s) for s in items])


_VARIANTS = (
    _t.Value_Null, _t.Value_Boolean, _t.Value_Integer, _t.Value_Number, _t.Value_Text,
    _t.Value_Timestamp, _t.Value_TextList,
)


def value_of(value):
    """A WIT value as Python: None, bool, int, float, str or list of str
    (timestamps are ints of milliseconds)."""
    if value is None or isinstance(value, _t.Value_Null):
        return None
    return value.value


def _as_value(kind, value):
    """A value of `kind` from a WIT value or a plain Python one."""
    if isinstance(value, _VARIANTS):
        return value
    make = {
        _t.ValueKind.BOOLEAN: Value.boolean,
        _t.ValueKind.INTEGER: Value.integer,
        _t.ValueKind.NUMBER: Value.number,
        _t.ValueKind.TEXT: Value.text,
        _t.ValueKind.TIMESTAMP: Value.timestamp,
        _t.ValueKind.TEXT_LIST: Value.text_list,
    }[kind]
    return make(value)


class Error:
    """The one error a plugin returns: `raise Error.config("...")`. A plugin
    that fails raises one of these; any other exception is a bug, which the
    SDK reports as `internal` with the exception's type and message."""

    InvalidInput = _t.Error_InvalidInput
    InvalidConfig = _t.Error_InvalidConfig
    Unavailable = _t.Error_Unavailable
    Internal = _t.Error_Internal

    @staticmethod
    def input(message):
        """The input data was wrong; the message names the row or field."""
        return Err(_t.Error_InvalidInput(str(message)))

    @staticmethod
    def config(message):
        """The parameters were wrong."""
        return Err(_t.Error_InvalidConfig(str(message)))

    @staticmethod
    def unavailable(message):
        """A dependency is unavailable; the host may retry."""
        return Err(_t.Error_Unavailable(str(message)))

    @staticmethod
    def internal(message):
        """A bug in the plugin."""
        return Err(_t.Error_Internal(str(message)))


class ParamSpec:
    """One parameter a plugin accepts, built like the Rust SDK's:
    `ParamSpec.number("threshold", "Minimum spend").default(500.0)`."""

    def __init__(self, kind, name, description):
        self._spec = _t.ParamSpec(
            name=name, kind=kind, description=description, required=False, default=None,
            min=None, max=None, choices=[],
        )

    @classmethod
    def number(cls, name, description):
        return cls(_t.ValueKind.NUMBER, name, description)

    @classmethod
    def integer(cls, name, description):
        return cls(_t.ValueKind.INTEGER, name, description)

    @classmethod
    def text(cls, name, description):
        return cls(_t.ValueKind.TEXT, name, description)

    @classmethod
    def boolean(cls, name, description):
        return cls(_t.ValueKind.BOOLEAN, name, description)

    @classmethod
    def timestamp(cls, name, description):
        return cls(_t.ValueKind.TIMESTAMP, name, description)

    @classmethod
    def text_list(cls, name, description):
        return cls(_t.ValueKind.TEXT_LIST, name, description)

    def required(self):
        """The parameter must be given."""
        self._spec.required = True
        return self

    def default(self, value):
        """The value used when the parameter is absent (a `Value` or a plain one)."""
        self._spec.default = _as_value(self._spec.kind, value)
        return self

    def range(self, min, max):
        """Inclusive bounds for a numeric parameter."""
        self._spec.min = float(min)
        self._spec.max = float(max)
        return self

    def choices(self, choices):
        """The only values a text parameter may take."""
        self._spec.choices = [str(c) for c in choices]
        return self

    def build(self):
        return self._spec


class Manifest:
    """What the plugin tells the host about itself, built like the Rust SDK's:
    `Manifest.new(name, version, description).field(...).param(...).purpose(...)`."""

    def __init__(self, name, version, description):
        self._manifest = _t.Manifest(
            name=name, version=version, description=description, parameters=[], fields=[],
            aggregates=[], purposes=[],
        )

    @classmethod
    def new(cls, name, version, description):
        return cls(name, version, description)

    def param(self, spec):
        """Declares a parameter (a `ParamSpec`)."""
        self._manifest.parameters.append(spec.build() if isinstance(spec, ParamSpec) else spec)
        return self

    def field(self, name, kind, cls=_t.FieldClass.STANDARD):
        """Declares a profile field the plugin needs; its column arrives in this order."""
        self._manifest.fields.append(_t.FieldSpec(name=name, kind=kind, class_=cls))
        return self

    def aggregate(self, name, event_type, function, property=None, window_days=None):
        """Declares an event aggregate the plugin needs; its column arrives in this order."""
        self._manifest.aggregates.append(
            _t.AggregateSpec(
                name=name, event_type=event_type, function=function, property=property,
                window_days=window_days,
            )
        )
        return self

    def purpose(self, purpose):
        """Declares a processing purpose."""
        self._manifest.purposes.append(purpose)
        return self

    def build(self):
        return self._manifest


class EventQuery:
    """Facts about a person's events of one type that a plan asks for (the
    Rust SDK's `EventQuery { name, event_type, filter, window_ms, sums }`):
    how many match `filter` (the rules language's filter grammar, e.g.
    `'category = "shoes"'`) within the last `window_ms` (None: all), the
    first and last time, and the sums of the numeric properties `sums`.
    Read back with `Batch.query(name)`."""

    __slots__ = ("name", "event_type", "filter", "window_ms", "sums")

    def __init__(self, name, event_type, filter=None, window_ms=None, sums=()):
        self.name = str(name)
        self.event_type = str(event_type)
        self.filter = None if filter is None else str(filter)
        self.window_ms = None if window_ms is None else int(window_ms)
        self.sums = [str(s) for s in sums]

    def __repr__(self):
        return (f"EventQuery(name={self.name!r}, event_type={self.event_type!r}, "
                f"filter={self.filter!r}, window_ms={self.window_ms!r}, sums={self.sums!r})")


class Needs:
    """The columns a segment or strategy reads for one set of parameters
    (`plan`), built like the Rust SDK's: `Needs.new().field(...)
    .aggregate(...).query(EventQuery(...)).segment(...)`. The batch carries
    the fields, then one boolean column per segment; the aggregates, then
    each query's `count`, `first`, `last` and one column per sum."""

    def __init__(self):
        self.fields = []
        self.aggregates = []
        self.queries = []
        self.segments = []

    @classmethod
    def new(cls):
        """A plan with no fields, aggregates, queries or segments yet."""
        return cls()

    @classmethod
    def declared(cls, manifest):
        """The manifest's fields and aggregates: what a plugin that does not plan is sent."""
        manifest = _manifest(manifest)
        needs = cls()
        needs.fields = list(manifest.fields)
        needs.aggregates = list(manifest.aggregates)
        return needs

    def field(self, name, kind, cls=_t.FieldClass.STANDARD):
        """Plans a profile field; its column arrives in this order."""
        self.fields.append(_t.FieldSpec(name=name, kind=kind, class_=cls))
        return self

    def aggregate(self, name, event_type, function, property=None, window_days=None):
        """Plans an event aggregate; its column arrives in this order."""
        self.aggregates.append(
            _t.AggregateSpec(
                name=name, event_type=event_type, function=function, property=property,
                window_days=window_days,
            )
        )
        return self

    def query(self, query):
        """Plans an event query (an `EventQuery`): its `count`, `first`,
        `last` and one column per sum arrive after the aggregates; read them
        with `Batch.query(name)`."""
        if not isinstance(query, EventQuery):
            raise TypeError(f"Needs.query takes an EventQuery, not {type(query).__name__}")
        self.queries.append(query)
        return self

    def segment(self, name):
        """Plans another segment's membership (by its name): a boolean
        column after the fields; read it with `Batch.segment(name)`."""
        self.segments.append(str(name))
        return self

    def build(self, bindings):
        """The bindings' `needs` record, from the module that defines it
        (`wit_world.exports.segment_plan` or `wit_world.imports.segment_plan`)."""
        return bindings.Needs(
            fields=list(self.fields),
            aggregates=list(self.aggregates),
            queries=[
                bindings.EventQuery(
                    name=q.name, event_type=q.event_type, filter=q.filter, window_ms=q.window_ms,
                    sums=list(q.sums),
                )
                for q in self.queries
            ],
            segments=list(self.segments),
        )


PLANS = "tessera-sdk: this plugin plans"
"""How a plugin that plans but is built for a plain world fails (the build looks for it)."""


def _needs(value, method):
    """The `Needs` a plugin's `plan` returned, checked."""
    if not isinstance(value, Needs):
        raise Error.internal(f"{method} returned {type(value).__name__}, not Needs")
    return value


def _manifest(value):
    """The bindings' manifest from what `describe` returned."""
    return value.build() if isinstance(value, Manifest) else value


class Params:
    """The parameters of one call, by name. The host has already checked
    them against the manifest's schema and filled in defaults."""

    def __init__(self, values):
        self._values = list(values)

    def get(self, name):
        """The raw value of a parameter, if present and not null (else None)."""
        for p in self._values:
            if p.name == name:
                return None if isinstance(p.value, _t.Value_Null) else p.value
        return None

    def _required(self, name, expected, types):
        value = self.get(name)
        if value is None:
            raise Error.config(f"parameter `{name}` is required")
        if not isinstance(value, types):
            raise Error.config(f"parameter `{name}` must be {expected}")
        return value.value

    def number(self, name):
        """A number (integers are widened)."""
        return float(self._required(name, "a number", (_t.Value_Number, _t.Value_Integer)))

    def integer(self, name):
        return self._required(name, "an integer", _t.Value_Integer)

    def boolean(self, name):
        return self._required(name, "a boolean", _t.Value_Boolean)

    def text(self, name):
        return self._required(name, "a text", _t.Value_Text)

    def text_list(self, name):
        return list(self._required(name, "a list of texts", _t.Value_TextList))

    def timestamp(self, name):
        return self._required(name, "a timestamp", _t.Value_Timestamp)

    def __iter__(self):
        """Every parameter, in the order the host sent them."""
        return iter(self._values)

    iter = __iter__


def _column_len(data):
    if isinstance(data, _t.ColumnData_Text):
        return len(data.value.codes)
    if isinstance(data, _t.ColumnData_TextList):
        return max(len(data.value.offsets) - 1, 0)
    return len(data.value)


class ColumnRef:
    """One column of a batch, checked to have one entry per row."""

    __slots__ = ("_column", "_data", "_present")

    def __init__(self, column, rows, name):
        n = _column_len(column.data)
        present = column.present
        if n != rows or (present and len(present) != rows):
            raise Error.input(f"column `{name}` has {n} values for {rows} rows")
        self._column = column
        self._data = column.data
        self._present = present

    def is_present(self, row):
        """Whether the row has a value."""
        return not self._present or self._present[row] != 0

    def number(self, row):
        """The row's value as a float (integers, timestamps and booleans are
        widened), or None when missing or not numeric."""
        if self._present and not self._present[row]:
            return None
        data = self._data
        if isinstance(data, (_t.ColumnData_Number, _t.ColumnData_Integer, _t.ColumnData_Timestamp)):
            return float(data.value[row])
        if isinstance(data, _t.ColumnData_Boolean):
            return 1.0 if data.value[row] else 0.0
        return None

    def integer(self, row):
        """The row's value as an integer or timestamp."""
        if self._present and not self._present[row]:
            return None
        if isinstance(self._data, (_t.ColumnData_Integer, _t.ColumnData_Timestamp)):
            return self._data.value[row]
        return None

    def boolean(self, row):
        if self._present and not self._present[row]:
            return None
        if isinstance(self._data, _t.ColumnData_Boolean):
            return self._data.value[row] != 0
        return None

    def text(self, row):
        if self._present and not self._present[row]:
            return None
        if isinstance(self._data, _t.ColumnData_Text):
            t = self._data.value
            code = t.codes[row]
            return t.dictionary[code] if code < len(t.dictionary) else None
        return None

    def text_list(self, row):
        """The row's list of texts (codes outside the dictionary are skipped)."""
        if self._present and not self._present[row]:
            return None
        if isinstance(self._data, _t.ColumnData_TextList):
            t = self._data.value
            d = t.dictionary
            return [d[c] for c in t.codes[t.offsets[row]:t.offsets[row + 1]] if c < len(d)]
        return None

    def numbers(self):
        """The whole column as floats, None for missing or non-numeric rows:
        the fast path for plugins that scan a column."""
        data = self._data
        if isinstance(data, _t.ColumnData_Number):
            values = data.value
        elif isinstance(data, (_t.ColumnData_Integer, _t.ColumnData_Timestamp)):
            values = [float(v) for v in data.value]
        elif isinstance(data, _t.ColumnData_Boolean):
            values = [1.0 if v else 0.0 for v in data.value]
        else:
            return [None] * _column_len(data)
        if not self._present:
            return list(values)
        return [v if p else None for v, p in zip(values, self._present)]

    def raw(self):
        """The bindings' column."""
        return self._column


class QueryColumns:
    """The columns of one planned event query (`Batch.query`)."""

    __slots__ = ("_count", "_first", "_last", "_sums")

    def __init__(self, count, first, last, sums):
        self._count = count
        self._first = first
        self._last = last
        self._sums = sums

    def count(self, row):
        """How many matching events the row's person has (0 also when the
        query was not granted, which leaves the column missing)."""
        n = self._count.integer(row)
        return 0 if n is None or n < 0 else n

    def first(self, row):
        """When the first matching event happened (ms), or None."""
        return self._first.integer(row)

    def last(self, row):
        """When the last matching event happened (ms), or None."""
        return self._last.integer(row)

    def sum(self, property, row):
        """The sum of `property` over the matching events (0 without any,
        and for a property the query does not sum)."""
        column = self._sums.get(property)
        value = column.number(row) if column is not None else None
        return 0.0 if value is None else value

    def is_present(self, row):
        """Whether the row has the query's facts at all: False when the
        query was not granted (every row missing)."""
        return self._count.is_present(row)

    def count_column(self):
        return self._count

    def first_column(self):
        return self._first

    def last_column(self):
        return self._last

    def sum_column(self, property):
        """The column of the sums of `property`, or None if the query does not sum it."""
        return self._sums.get(property)


class Batch:
    """A batch of profile views with its columns addressable by the names
    the plugin declared in its manifest, or planned for the call's
    parameters (`Needs`)."""

    def __init__(self, inner, names):
        self._inner = inner
        self._field_names = [f.name for f in names.fields]
        self._aggregate_names = [a.name for a in names.aggregates]
        self._queries = [(q.name, list(q.sums)) for q in getattr(names, "queries", ())]
        self._segment_names = list(getattr(names, "segments", ()))

    @classmethod
    def planned(cls, inner, needs):
        """Wraps a batch whose columns were planned (`Needs`)."""
        return cls(inner, needs)

    def rows(self):
        """Number of rows (subjects)."""
        return self._inner.rows

    def now(self):
        """"Now" for this batch, in milliseconds since the epoch."""
        return self._inner.now

    def keys(self):
        """The pseudonymous key of each row: stable per subject for this plugin."""
        return self._inner.keys

    def field(self, name):
        """The column of a declared (or planned) field."""
        if name not in self._field_names:
            raise Error.internal(
                f"field `{name}` is not declared in the manifest or planned for these parameters"
            )
        return self._column(self._inner.fields, self._field_names.index(name), name)

    def aggregate(self, name):
        """The column of a declared (or planned) event aggregate."""
        if name not in self._aggregate_names:
            raise Error.internal(
                f"aggregate `{name}` is not declared in the manifest or planned for these parameters"
            )
        return self._column(self._inner.aggregates, self._aggregate_names.index(name), name)

    def query(self, name):
        """The columns of a planned event query, by its name: they follow
        the aggregates, `count`, `first`, `last`, then one per sum."""
        index = len(self._aggregate_names)
        for query, sums in self._queries:
            if query == name:
                columns = self._inner.aggregates

                def at(offset, what):
                    return self._column(columns, index + offset, f"{name} ({what})")

                by_sum = {p: at(3 + i, p) for i, p in enumerate(sums)}
                return QueryColumns(at(0, "count"), at(1, "first"), at(2, "last"), by_sum)
            index += 3 + len(sums)
        raise Error.internal(f"query `{name}` is not planned for these parameters")

    def segment(self, name):
        """The membership column (boolean, 1: member now) of another segment
        the plan reads, by the segment's name: they follow the fields."""
        if name not in self._segment_names:
            raise Error.internal(f"segment `{name}` is not planned for these parameters")
        index = len(self._field_names) + self._segment_names.index(name)
        return self._column(self._inner.fields, index, f"segment {name}")

    def _column(self, columns, index, name):
        if index >= len(columns):
            raise Error.input(f"the host sent no column for `{name}`")
        return ColumnRef(columns[index], self.rows(), name)

    def raw(self):
        """The bindings' batch, for plugins that read columns by position."""
        return self._inner


def call(method, *args):
    """Runs a plugin method; a Python exception other than a plugin error is
    a bug in the plugin, reported as `internal` instead of a trap."""
    try:
        return method(*args)
    except Err:
        raise
    except RecursionError:
        raise Error.internal("recursion too deep") from None
    except Exception as e:  # noqa: BLE001 - the boundary of the plugin
        raise Error.internal(f"{type(e).__name__}: {e}") from None
