/**
 * OCI images for tests, made byte by byte (layers, configs, manifests, indexes in an OCI layout
 * directory), a real registry (Debian's docker-registry, distribution 2.8) on loopback with its
 * own storage, a token server, and a proxy that cuts or corrupts blob transfers.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarHeader, TAR_END, type TarHeader } from '../src/os/tarwrite.js';
import type { TestRoot } from './helpers.js';

export interface Member {
  path: string;
  type?: 'file' | 'dir' | 'symlink' | 'char' | 'hardlink';
  data?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  xattrs?: Record<string, string>;
  /** Device numbers of a char device. */
  dev?: [number, number];
}

/** An uncompressed layer tar from members (hard links and devices written by hand). */
export function layerTar(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    const type = m.type ?? 'file';
    const h = tarHeader({
      path: m.path,
      type: type === 'hardlink' ? 'file' : type,
      mode: m.mode ?? (type === 'dir' ? 0o755 : 0o644),
      uid: m.uid ?? 0,
      gid: m.gid ?? 0,
      size: type === 'file' ? data.length : 0,
      mtime: 1_700_000_000,
      ...(m.linkname !== undefined ? { linkname: m.linkname } : {}),
      ...(m.xattrs ? { xattrs: m.xattrs } : {}),
    } satisfies TarHeader);
    const last = h.subarray(h.length - 512);
    if (type === 'hardlink') last.write('1', 156, 1, 'latin1');
    if (type === 'char' && m.dev) {
      last.write(m.dev[0].toString(8).padStart(7, '0') + '\0', 329, 8, 'latin1');
      last.write(m.dev[1].toString(8).padStart(7, '0') + '\0', 337, 8, 'latin1');
    }
    if (type === 'hardlink' || (type === 'char' && m.dev)) {
      last.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of last) sum += b;
      last.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
    }
    parts.push(h);
    if (type === 'file' && data.length) parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

/** The busybox base: /bin/busybox and the applets a guest needs, /etc/passwd with an app user. */
export function busyboxMembers(): Member[] {
  const applets = [
    'sh',
    'cat',
    'ls',
    'sleep',
    'httpd',
    'echo',
    'id',
    'env',
    'pwd',
    'stat',
    'test',
    'mkdir',
    'rm',
    'touch',
    'ps',
    'getfattr',
  ];
  return [
    { path: 'bin', type: 'dir' },
    { path: 'bin/busybox', data: fs.readFileSync('/bin/busybox'), mode: 0o755 },
    ...applets.map((a): Member => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    { path: 'etc', type: 'dir' },
    { path: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n' },
    { path: 'etc/group', data: 'root:x:0:\napp:x:2345:\nstaff:x:50:\n' },
  ];
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface ImageSpec {
  /** Uncompressed layer tars, bottom first (gzipped in the image unless `plain`). */
  layers: Buffer[];
  config?: Record<string, unknown>;
  architecture?: string;
  plain?: boolean;
  /** The config's diff IDs, when not the layers' own (a hostile image). */
  diffIds?: string[];
}

function putBlob(dir: string, b: Buffer): { digest: string; size: number } {
  const digest = sha(b);
  fs.mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  fs.writeFileSync(join(dir, 'blobs/sha256', digest.slice(7)), b);
  return { digest, size: b.length };
}

/** Write one image's blobs into an OCI layout; its manifest's descriptor. */
export function writeImage(
  dir: string,
  spec: ImageSpec,
): { mediaType: string; digest: string; size: number; platform: { os: string; architecture: string } } {
  const arch = spec.architecture ?? 'amd64';
  const layers = spec.layers.map((t) => {
    const body = spec.plain ? t : gzipSync(t);
    return {
      mediaType: spec.plain
        ? 'application/vnd.oci.image.layer.v1.tar'
        : 'application/vnd.oci.image.layer.v1.tar+gzip',
      ...putBlob(dir, body),
    };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: spec.config ?? {},
      rootfs: { type: 'layers', diff_ids: spec.diffIds ?? spec.layers.map(sha) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...putBlob(dir, config) },
      layers,
    }),
  );
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...putBlob(dir, manifest),
    platform: { os: 'linux', architecture: arch },
  };
}

/** An OCI layout directory holding one image (or an index of several platforms) under `tag`. */
export function ociLayout(dir: string, tag: string, images: ImageSpec[]): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const ds = images.map((i) => writeImage(dir, i));
  let top: Record<string, unknown>;
  if (ds.length === 1) top = { ...ds[0] };
  else {
    const ix = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: ds,
      }),
    );
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...putBlob(dir, ix) };
  }
  delete top['platform'];
  fs.writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...top, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return dir;
}

export function freePort(): number {
  const used = spawnSync('ss', ['-Htan'], { encoding: 'utf8' }).stdout;
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 20000);
    if (!used.includes(`:${p} `)) return p;
  }
}

/** A test CA and a certificate for 127.0.0.1 signed by it (made once per root). */
export function testCa(t: TestRoot): { ca: string; cert: string; key: string } {
  const ca = t.path('ca.pem');
  const caKey = t.path('ca.key');
  const cert = t.path('reg.pem');
  const key = t.path('reg.key');
  if (fs.existsSync(cert)) return { ca, cert, key };
  const ssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '1', '-subj', '/CN=jaula test CA']);
  ssl(['req', ...ec, '-keyout', key, '-out', t.path('reg.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(t.path('reg.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl([
    'x509',
    '-req',
    '-in',
    t.path('reg.csr'),
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '1',
    '-extfile',
    t.path('reg.ext'),
  ]);
  return { ca, cert, key };
}

export interface Registry {
  host: string;
  stop(): Promise<void>;
}

async function waitPort(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`docker-registry ended: ${log()}`);
    const up = await new Promise<boolean>((res) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not listen: ${log()}`);
}

/** Start docker-registry on loopback with its own storage (TLS and token auth on request). */
export async function startRegistry(
  t: Pick<TestRoot, 'path'>,
  name: string,
  o: { tls?: { cert: string; key: string }; token?: { realm: string; cert: string } } = {},
): Promise<Registry> {
  const port = freePort();
  const dir = t.path(`registry-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  const lines = [
    'version: 0.1',
    'log: {level: warn}',
    'storage:',
    `  filesystem: {rootdirectory: ${dir}/data}`,
    '  delete: {enabled: true}',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    ...(o.tls ? [`  tls: {certificate: ${o.tls.cert}, key: ${o.tls.key}}`] : []),
    ...(o.token
      ? [
          'auth:',
          '  token:',
          `    realm: ${o.token.realm}`,
          '    service: jaula-test',
          '    issuer: jaula-test-issuer',
          `    rootcertbundle: ${o.token.cert}`,
        ]
      : []),
  ];
  fs.writeFileSync(join(dir, 'config.yml'), lines.join('\n') + '\n');
  const proc = spawn('docker-registry', ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  await waitPort(port, proc, () => err);
  return {
    host: `127.0.0.1:${port}`,
    stop: async () => {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await gone;
      }
    },
  };
}

/** skopeo copy from an OCI layout to the registry (--all: every platform of an index). */
export function push(
  layout: string,
  tag: string,
  dest: string,
  o: { all?: boolean; creds?: string; ca?: string } = {},
): void {
  const args = [
    'copy',
    '--quiet',
    ...(o.all ? ['--all'] : []),
    o.ca ? `--dest-cert-dir=${o.ca}` : '--dest-tls-verify=false',
  ];
  if (o.creds) args.push('--dest-creds', o.creds);
  const r = spawnSync('skopeo', [...args, `oci:${layout}:${tag}`, `docker://${dest}`], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`skopeo copy failed: ${r.stderr}`);
}

/**
 * A token server (Docker's token protocol, tests/tokenserver.ts) for docker-registry's token
 * auth, in a process of its own (the tests run jaula and skopeo synchronously). It counts the
 * tokens it gave in a file.
 */
export async function startTokenServer(
  t: TestRoot,
  user: string,
  pass: string,
): Promise<{ realm: string; cert: string; issued: () => number; stop: () => Promise<void> }> {
  const { cert, key } = testCa(t);
  const count = t.path('tokens-issued');
  const proc = spawn(
    process.execPath,
    [new URL('./tokenserver.js', import.meta.url).pathname, cert, key, user, pass, count],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((res, rej) => {
    proc.stdout?.once('data', (b: Buffer) => res(Number(b.toString().trim())));
    proc.once('exit', () => rej(new Error('the token server ended')));
  });
  return {
    realm: `http://127.0.0.1:${port}/token`,
    cert,
    issued: () => (fs.existsSync(count) ? fs.readFileSync(count, 'utf8').length : 0),
    stop: async () => {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await gone;
      }
    },
  };
}

/**
 * A proxy in front of a registry that spoils blob transfers: "cut" closes the connection after
 * `after` bytes of the first answer to each blob GET, "corrupt" flips a byte of every blob.
 * Records the requests and counts the bytes of the registry's answers' bodies (as it sent them).
 */
export async function startProxy(
  target: string,
  mode: 'cut' | 'corrupt' | 'none',
  after = 4096,
): Promise<{ host: string; requests: string[]; bytes: () => number; stop: () => Promise<void> }> {
  const [thost, tport] = target.split(':');
  const cut = new Set<string>();
  const requests: string[] = [];
  let bytes = 0;
  const srv = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    const up = http.request(
      { host: thost, port: Number(tport), path: req.url, method: req.method, headers: req.headers },
      (ur) => {
        ur.on('data', (b: Buffer) => (bytes += b.length));
        const blob =
          /\/blobs\/sha256:/.test(req.url ?? '') &&
          req.method === 'GET' &&
          ur.statusCode !== undefined &&
          ur.statusCode < 300;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (!blob || mode === 'none') return void ur.pipe(res);
        if (mode === 'corrupt') {
          let first = true;
          ur.on('data', (b: Buffer) => {
            if (first && b.length) {
              b[0] = (b[0] ?? 0) ^ 0xff;
              first = false;
            }
            res.write(b);
          });
          ur.on('end', () => res.end());
          return;
        }
        const key = req.url ?? '';
        if (cut.has(key)) return void ur.pipe(res);
        cut.add(key);
        let sent = 0;
        ur.on('data', (b: Buffer) => {
          if (sent >= after) return;
          const part = b.subarray(0, after - sent);
          sent += part.length;
          res.write(part);
          if (sent >= after) {
            ur.destroy();
            res.socket?.destroy();
          }
        });
        ur.on('end', () => res.end());
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    requests,
    bytes: () => bytes,
    stop: () =>
      new Promise((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}
