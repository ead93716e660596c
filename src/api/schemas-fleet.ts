/** The fleet's wire shapes (jaula fleet, list --fleet): components of the OpenAPI document too. */
import { arr, bool, component, int, num, obj, oneOf, record, str, strs } from './schema.js';
import { GuestSample, ProcessRow } from './schemas.js';

/** A host of the fleet (jaula fleet hosts), as it published itself in etcd on its lease. */
export const FleetHost = component(
  'FleetHost',
  obj({
    host: str,
    /** Where its jaulad answers the other hosts (https://ADDR:PORT). */
    'address?': str,
    state: oneOf(['up', 'fenced', 'leaving']),
    labels: record(str),
    cpus: int,
    memoryBytes: num,
    memoryFreeBytes: num,
    /** Free space where guests' files are (the pool, or var/lib/jaula). */
    diskFreeBytes: num,
    guests: int,
    running: int,
    /** Whether this host can send or take a running guest, as `jaula doctor` finds it. */
    liveMigration: str,
    /** Its stored templates and jaula networks (placement weighs them). */
    'templates?': strs,
    'networks?': strs,
    pid: int,
    /** When it last published its record. */
    at: str,
  }),
);

/** The hosts a fleet-wide view could not ask, and why (jaula ps --fleet, stat --fleet). */
const Missing = arr(obj({ host: str, error: str }));

/** Every host's processes of its running guests (jaula ps --fleet). */
export const FleetProcesses = component(
  'FleetProcesses',
  obj({ hosts: arr(obj({ host: str, rows: arr(ProcessRow) })), missing: Missing }),
);

/** Every host's samples of its running guests (jaula stat --fleet). */
export const FleetSamples = component(
  'FleetSamples',
  obj({ hosts: arr(obj({ host: str, samples: arr(GuestSample) })), missing: Missing }),
);

/** A drain's outcome (jaula fleet drain): where each guest went, and those that stayed. */
export const FleetDrainResult = component(
  'FleetDrainResult',
  obj({
    host: str,
    moved: arr(obj({ guest: str, to: str, state: str, downtimeMs: num })),
    failed: arr(obj({ guest: str, to: str, error: str })),
  }),
);

/** A balance's moves (jaula fleet balance): planned, done, failed. */
const BalanceMove = { guest: str, from: str, to: str };
export const FleetBalanceResult = component(
  'FleetBalanceResult',
  obj({
    planned: arr(obj(BalanceMove)),
    moved: arr(obj({ ...BalanceMove, state: str, downtimeMs: num })),
    failed: arr(obj({ ...BalanceMove, error: str })),
  }),
);

/** A guest of the fleet with its host (jaula list --fleet); "lost": its host is gone. */
export const FleetGuest = component(
  'FleetGuest',
  obj({ host: str, name: str, state: str, context: int, addresses: strs, marks: strs }),
);

/** High availability in the fleet (jaula fleet ha): the leader, each HA guest's latest replica, the failovers. */
export const FleetHa = component(
  'FleetHa',
  obj({
    'leader?': str,
    replicas: arr(
      obj({ guest: str, host: str, from: str, asOf: str, round: str, running: bool, bytes: int }),
    ),
    failovers: arr(
      obj({
        guest: str,
        from: str,
        to: str,
        leader: str,
        at: str,
        asOf: str,
        running: bool,
        lostMs: obj({ atMost: int, atLeast: int }),
        'outcome?': str,
      }),
    ),
  }),
);

/** This host's membership of a fleet (jaula fleet init|join|leave, and GET /v1/fleet). */
export const FleetStatus = component(
  'FleetStatus',
  obj({
    /** "none": in no fleet; "configured": a member, but no jaulad holds its lease. */
    state: oneOf(['none', 'configured', 'joining', 'up', 'fenced']),
    'host?': str,
    endpoints: strs,
    'ttl?': int,
    labels: record(str),
    networks: strs,
    /** Guests of this host that the join reserved in the fleet, and those it could not. */
    'claimed?': strs,
    'problems?': strs,
  }),
);
