// The origin address guard, named by module and export so that it can cross to a thread (a
// function cannot be sent): every layout of the edge loads it the same way.
import type { AddressGuard } from '../upstream/origin.ts';

/** A module exporting a function that makes the origin address guard from `argument`. */
export interface GuardSpec {
  /** A file: URL or package specifier the edge's threads can import. */
  module: string;
  name: string;
  argument: unknown;
}

export async function loadGuard(spec: GuardSpec | null): Promise<AddressGuard | null> {
  if (spec === null) return null;
  const module = (await import(spec.module)) as Record<string, unknown>;
  const factory = module[spec.name];
  if (typeof factory !== 'function') {
    throw new TypeError(`${spec.module} exports no function ${spec.name}`);
  }
  return (factory as (argument: unknown) => AddressGuard)(spec.argument);
}
