/**
 * The wire shapes of moving guests between hosts (jaula remote, jaula migrate): components of
 * the same OpenAPI document as schemas.ts's (component() adds them to it).
 */
import { arr, bool, component, int, num, obj, oneOf, str } from './schema.js';

/** A remote: another jaulad known by name (jaula remote add), its certificate pinned. */
export const RemoteInfo = component('Remote', obj({ name: str, url: str, fingerprint: str, added: str }));

/** What a host knows of a move of a guest (jaula migrate): its phase on this side. */
export const MoveInfo = component(
  'Move',
  obj({
    id: str,
    role: oneOf(['source', 'target']),
    guest: str,
    /** The source: the remote's name; the target: the source host. */
    peer: str,
    mode: oneOf(['cold', 'sync', 'live']),
    running: bool,
    phase: oneOf(['copying', 'handover', 'done', 'back', 'receiving', 'placed', 'aborted']),
    started: str,
    updated: str,
    'message?': str,
    'context?': int,
    /** One line: what happened. */
    description: str,
  }),
);

/** A move's end (jaula migrate): where the guest is, what was sent, each phase's time. */
export const MigrateResult = component(
  'MigrateResult',
  obj({
    guest: str,
    remote: str,
    mode: oneOf(['cold', 'sync', 'live']),
    id: str,
    state: oneOf(['running', 'stored']),
    context: int,
    bytes: num,
    layersSent: int,
    layersKept: int,
    downtimeMs: num,
    phases: arr(obj({ phase: str, ms: num })),
  }),
);
