import type { ForwardSpec } from '../guest/forward.js';
import type { InterfaceSpec } from '../guest/ifspec.js';

/** The network part of a guest's config. */
export interface GuestNetConfig {
  name: string;
  context: number;
  interfaces: InterfaceSpec[];
  forwards: ForwardSpec[];
}

export const MAX_INTERFACES_PER_GUEST = 10;
