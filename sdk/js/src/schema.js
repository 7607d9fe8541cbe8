// The tenant's schema, as far as the operator granted it
// (`tessera:plan/schema`): for segments, to plan columns of the right kind.

import { traitKind as witTraitKind } from 'tessera:plan/schema@0.1.0';

/** The kind (`ValueKind`) of the tenant's trait `name`, or undefined. */
export function traitKind(name) {
  return witTraitKind(name) ?? undefined;
}
