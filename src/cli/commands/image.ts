import { resolve } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { formatBytes, parseBytes } from '../../common/size.js';
import type { ImageInfo } from '../../api/types.js';
import { bool, num, str, type Parsed } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

const USAGE = `Usage: jaula image pull REF [--creds USER:PASS] [--auth-file FILE] [--insecure]
       jaula image import FILE|DIR [--name REF]
       jaula image list [--format table|json]
       jaula image inspect REF [--format table|json]
       jaula image delete REF
       jaula image push GUEST|TEMPLATE REF [--creds USER:PASS] [--auth-file FILE] [--insecure]`;

export const image: Command = {
  summary: 'OCI images: pull from a registry, import from files, list, inspect, delete',
  help: `${USAGE}

An image's layers are stored once each, by their digest, in $JAULA_ROOT/var/lib/jaula/layers
and shared by every image and guest that uses them ("jaula du" shows them as shared); build a
guest from one with "jaula build NAME -m oci -- -i REF".

  pull REF          from its registry (HTTP API v2): REF is [HOST[:PORT]/]NAME[:TAG][@DIGEST];
                    the manifest for this host's platform under an index; every blob checked
                    against its digest as it streams, a dropped transfer resumed where it
                    stopped; an unchanged image costs one manifest request. Credentials:
                    --creds USER:PASS, or the auth file (--auth-file, default
                    $JAULA_ROOT/etc/jaula/auth.json, Docker's config.json shape). Plain http
                    only to a registry on loopback or with --insecure.
  import FILE|DIR   a docker save archive, an oci-archive or an OCI layout directory
  delete REF        refused while a guest's root stacks the image
  push SOURCE REF   a stopped guest's root (overlay storage) or a stored template as an OCI
                    image: layers that came from an image are sent as they came (not at all
                    when the registry has them), the guest's own changes as a new layer
                    (overlayfs whiteouts back to ".wh." entries); its command, Env, WorkingDir,
                    User and StopSignal in the image's config

Every layer is checked before anything is written: absolute paths, "..", writes through
symlinks, whiteouts out of their layer, hard links out of the tree are refused with the member
named; --max-layer-size SIZE and --max-layer-files N bound each layer (default 64G, 2000000).

Examples:
  jaula image pull 127.0.0.1:5000/busybox:1.36
  jaula image import /srv/app.oci.tar --name localhost/app:1
  jaula build app1 -m oci --forward 8080:80 -- -i 127.0.0.1:5000/web:1.0`,
  specs: {
    creds: { type: 'string' },
    'auth-file': { type: 'string' },
    insecure: { type: 'bool' },
    name: { type: 'string' },
    'max-layer-size': { type: 'string' },
    'max-layer-files': { type: 'number' },
    format: { type: 'string' },
    quiet: { type: 'bool', short: 'q' },
  },
  async run(p) {
    const [verb, a, ...extra] = p.positionals;
    const hooks = bool(p, 'quiet') ? {} : { onProgress: (l: string): void => err(`jaula: ${l}`) };
    const need = (ok: boolean): void => {
      if (!ok || extra.length) throw new JaulaError('usage', `${USAGE}\n(see "jaula image --help")`);
    };
    const size = str(p, 'max-layer-size');
    const files = num(p, 'max-layer-files');
    const limits = {
      ...(size !== undefined ? { maxLayerBytes: parseBytes(size, 'layer size') } : {}),
      ...(files !== undefined ? { maxLayerEntries: files } : {}),
    };
    const e = await engine();
    switch (verb) {
      case 'pull': {
        need(!!a);
        const i = await e.pullImage({ ref: a as string, ...registryOpts(p), ...limits }, hooks);
        out(`Pulled image "${i.ref}" (${i.digest}, ${i.layers.length} layers, ${formatBytes(i.bytes)}).`);
        return 0;
      }
      case 'import': {
        need(!!a);
        const name = str(p, 'name');
        const i = await e.importImage(
          { file: resolve(a as string), ...(name ? { name } : {}), ...limits },
          hooks,
        );
        out(`Imported image "${i.ref}" (${i.layers.length} layers, ${formatBytes(i.bytes)}).`);
        return 0;
      }
      case 'list':
      case undefined: {
        need(!a);
        const is = await e.listImages();
        if (formatOf(p) === 'json') json(is);
        else
          out(
            table(
              ['IMAGE', 'DIGEST', 'LAYERS', 'SIZE', 'PLATFORM', 'USED BY'],
              is.map((i) => [
                i.ref,
                i.digest.slice(0, 19),
                i.layers.length,
                formatBytes(i.bytes),
                i.platform,
                i.usedBy.join(',') || undefined,
              ]),
            ),
          );
        return 0;
      }
      case 'inspect': {
        need(!!a);
        const i = await e.inspectImage({ ref: a as string });
        if (formatOf(p) === 'json') json(i);
        else out(describe(i));
        return 0;
      }
      case 'push': {
        const [dest, ...more] = extra;
        if (!a || !dest || more.length) throw new JaulaError('usage', `${USAGE}\n(see "jaula image --help")`);
        const res = await e.pushImage({ source: a, ref: dest, ...registryOpts(p) }, hooks);
        out(`Pushed "${a}" as image "${res.ref}" (${res.digest}).`);
        return 0;
      }
      case 'delete':
        need(!!a);
        out(`Deleted image "${(await e.deleteImage({ ref: a as string })).deleted}".`);
        return 0;
      default:
        throw new JaulaError('usage', `Unknown "jaula image ${verb}": ${USAGE}`);
    }
  },
};

/** The registry options of pull and push: credentials (a file is the host's: absolute), --insecure. */
function registryOpts(p: Parsed): { creds?: string; authFile?: string; insecure?: boolean } {
  const creds = str(p, 'creds');
  const authFile = str(p, 'auth-file');
  return {
    ...(creds !== undefined ? { creds } : {}),
    ...(authFile !== undefined ? { authFile: resolve(authFile) } : {}),
    ...(bool(p, 'insecure') ? { insecure: true } : {}),
  };
}

function describe(i: ImageInfo): string {
  const lines = [
    `image:       ${i.ref}`,
    `digest:      ${i.digest}`,
    `platform:    ${i.platform}`,
    `source:      ${i.source} (${i.created.slice(0, 19).replace('T', ' ')})`,
    `entrypoint:  ${JSON.stringify(i.entrypoint)}`,
    `cmd:         ${JSON.stringify(i.cmd)}`,
    `env:         ${i.env.join(' ')}`,
    `workingdir:  ${i.workingDir}`,
    `user:        ${i.user}`,
    `stopsignal:  ${i.stopSignal}`,
    `ports:       ${i.exposedPorts.join(' ')}`,
    `used by:     ${i.usedBy.join(', ')}`,
    `layers (bottom first, ${formatBytes(i.bytes)}):`,
    ...i.layers.map((l) => `  ${l.layer}  ${String(l.files).padStart(7)} files  ${formatBytes(l.bytes)}`),
  ];
  return lines.join('\n');
}
