import type { OciLimitResources } from '../cgroups/oci.js';
import type { SeccompProfile } from './seccomp.js';

/** The parts of the OCI runtime spec (config.json) that jaula writes. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: {
      bounding: string[];
      effective: string[];
      permitted: string[];
      inheritable?: string[];
      ambient?: string[];
    };
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  annotations: Record<string, string>;
  linux: {
    namespaces: { type: string; path?: string }[];
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    cgroupsPath: string;
    seccomp?: SeccompProfile;
    resources: {
      devices: { allow: boolean; type?: string; major?: number; minor?: number; access?: string }[];
    } & Partial<OciLimitResources>;
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}
