"""`python-hostile`: a segment written with the Python SDK that attacks the
host when asked to. Parameter `attack`:

- `none`: an honest threshold rule (`total_spend >= 500`), so the same
  component proves the host still serves it after an attack;
- `loop`: loops forever (stopped by fuel or the time limit);
- `bomb`: allocates memory without end (stopped by the memory limit);
- `raise`: raises a Python exception (a bug: the SDK reports `internal`).
"""

from tessera_sdk import FieldClass, Manifest, ParamSpec, ValueKind
from tessera_sdk.segment import Memberships, Segment, export_segment


class Hostile(Segment):
    def describe(self):
        return (
            Manifest.new("python-hostile", "0.1.0", "Attacks the host on request")
            .field("total_spend", ValueKind.NUMBER, FieldClass.STANDARD)
            .param(ParamSpec.text("attack", "What to do").choices(["none", "loop", "bomb", "raise"]).default("none"))
            .purpose("analytics")
        )

    def evaluate(self, params, batch):
        attack = params.text("attack")
        if attack == "loop":
            n = 0
            while True:
                n += 1
        if attack == "bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if attack == "raise":
            raise ValueError("the plugin has a bug")
        spend = batch.field("total_spend").numbers()
        return Memberships.from_bools(v is not None and v >= 500.0 for v in spend)


WitWorld = export_segment(Hostile)
