"""Plugin-scoped key-value state, when the operator grants a state quota.

The component imports `tessera:plugin/state` only if it is built with
`python -m tessera_sdk.build --import state`; the bundle must then ask for a
`state_quota`.
"""

try:
    from wit_world.imports import state as _state
except ImportError:  # built without `--import state`
    _state = None

__all__ = ["get", "put", "delete", "keys"]


def _need():
    if _state is None:
        from .core import Error

        raise Error.internal(
            "this plugin was built without state: build it with `--import state` "
            "and ask for a state_quota in bundle.toml"
        )
    return _state


def get(key):
    """The stored value (bytes), or None."""
    return _need().get(key)


def put(key, value):
    """Stores a value; fails with `unavailable` past the granted quota."""
    _need().put(key, bytes(value))


def delete(key):
    """Removes a key; removing a missing key is not an error."""
    _need().delete(key)


def keys(prefix, limit):
    """Keys with the given prefix, in order, at most `limit` of them."""
    return _need().keys(prefix, limit)
