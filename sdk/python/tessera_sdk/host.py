"""Logging and the host clock, which every plugin gets."""

from wit_world.imports import host as _h

Level = _h.Level

__all__ = ["Level", "log", "now", "trace", "debug", "info", "warn", "error"]


def log(level, message):
    """Writes a line to the host log. The host keeps a per-call budget of
    lines and drops the rest, so log what helps an operator, not every row."""
    _h.log(level, str(message))


def now():
    """The host's clock, in milliseconds since the epoch. Simulations and
    tests may run it at another time: use this, never a clock of your own."""
    return _h.now()


def trace(message):
    log(Level.TRACE, message)


def debug(message):
    log(Level.DEBUG, message)


def info(message):
    log(Level.INFO, message)


def warn(message):
    log(Level.WARN, message)


def error(message):
    log(Level.ERROR, message)
