"""The `connector` world: parse pushed bytes into records, pull pages from a
source, deliver actions to a destination.

    class Lines(Connector):
        def describe(self): ...
        def modes(self): return Modes.PUSH
        def parse(self, params, data): ...

    WitWorld = export_connector(Lines)
"""

import wit_world
from wit_world.imports import records as _r

from .core import Error, Params, _manifest, call

Modes = _r.Modes
Event = _r.Event
TraitUpdate = _r.TraitUpdate
IdentityLink = _r.IdentityLink
ParseOutput = _r.ParseOutput
Page = _r.Page
Action = _r.Action
DeliveryReport = _r.DeliveryReport
DeliveryFailure = _r.DeliveryFailure


class Record:
    """Constructors of the WIT `record` variant: `Record.event(Event(...))`."""

    Event = _r.Record_Event
    TraitUpdate = _r.Record_TraitUpdate
    IdentityLink = _r.Record_IdentityLink

    @staticmethod
    def event(event):
        return _r.Record_Event(event)

    @staticmethod
    def trait_update(update):
        return _r.Record_TraitUpdate(update)

    @staticmethod
    def identity_link(link):
        return _r.Record_IdentityLink(link)


class Identity(_r.Identity):
    """One identifier of a person: kind is "email", "phone", "member_id",
    "device_id" or "external:<system>"."""

    @classmethod
    def new(cls, kind, value):
        return cls(kind=kind, value=value)


class Rejection(_r.Rejection):
    """An input row the connector could not turn into a record, and why."""

    @classmethod
    def new(cls, row, field, reason):
        return cls(row=int(row), field=field, reason=str(reason))


__all__ = [
    "Connector", "Modes", "Event", "TraitUpdate", "IdentityLink", "Record", "Identity", "Rejection",
    "ParseOutput", "Page", "Action", "DeliveryReport", "DeliveryFailure", "export_connector",
]


class Connector:
    """A data connector. Implement the modes `modes()` declares; the host
    never calls the others."""

    def describe(self):
        """Name, version and parameters (a `Manifest`)."""
        raise NotImplementedError

    def modes(self):
        """Which of `Modes.PUSH`, `Modes.PULL`, `Modes.DELIVER` it implements."""
        raise NotImplementedError

    def validate(self, params):
        """Checks parameters once, before the host saves them; raise `Error.config`."""

    def parse(self, params, data):
        """Parses one chunk of pushed bytes into a `ParseOutput`."""
        raise Error.config("this connector does not parse pushed data")

    def pull(self, params, cursor):
        """Fetches one `Page` from the cursor (None = from the start)."""
        raise Error.config("this connector does not pull")

    def deliver(self, params, actions):
        """Delivers a batch of actions; returns a `DeliveryReport`."""
        raise Error.config("this connector does not deliver")


def export_connector(cls):
    """The component's `WitWorld` for a `Connector` subclass:
    `WitWorld = export_connector(Lines)` in the app module."""
    plugin = cls()

    class Exported(wit_world.WitWorld):
        def describe(self):
            return _manifest(plugin.describe())

        def supports(self):
            return plugin.modes()

        def validate(self, params):
            call(plugin.validate, Params(params))

        def parse(self, params, data):
            return call(plugin.parse, Params(params), data)

        def pull(self, params, cursor):
            return call(plugin.pull, Params(params), cursor)

        def deliver(self, params, actions):
            return call(plugin.deliver, Params(params), actions)

    Exported.__name__ = Exported.__qualname__ = "WitWorld"
    return Exported
