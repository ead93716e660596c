import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChallenge } from './http.js';
import { choosePlatform, hostPlatform, parseManifest } from './manifest.js';
import { formatRef, isLoopback, parseRef } from './ref.js';

describe('image references', () => {
  it('read as Docker and Podman read them', () => {
    const cases: [string, string][] = [
      ['busybox', 'docker.io/library/busybox:latest'],
      ['user/app:1.2', 'docker.io/user/app:1.2'],
      ['127.0.0.1:5000/a/b:v1', '127.0.0.1:5000/a/b:v1'],
      ['localhost/app', 'localhost/app:latest'],
      ['ghcr.io/o/r@sha256:' + 'a'.repeat(64), `ghcr.io/o/r:latest@sha256:${'a'.repeat(64)}`],
    ];
    for (const [given, full] of cases) assert.equal(formatRef(parseRef(given)), full, given);
  });

  it('refuse what is not one, saying why', () => {
    assert.throws(() => parseRef('Upper/case'), /"Upper" is not a valid name component/);
    assert.throws(() => parseRef('a@sha256:12'), /is not sha256:<64 hex digits>/);
    assert.throws(() => parseRef('a:b:c'), /tag/);
    assert.throws(() => parseRef(''), /empty/);
  });

  it('know loopback registries (plain http allowed there only)', () => {
    for (const h of ['localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000'])
      assert.ok(isLoopback(h), h);
    for (const h of ['10.0.0.1:5000', 'registry.example', 'localhost.example.com'])
      assert.ok(!isLoopback(h), h);
  });
});

describe('registry challenges', () => {
  it('parse the Bearer realm, service and scope', () => {
    assert.deepEqual(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
      ),
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example/token',
          service: 'registry.example',
          scope: 'repository:a/b:pull',
        },
      },
    );
    assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: 'basic', params: { realm: 'x' } });
  });
});

describe('manifests', () => {
  const d = (arch: string, n: string): unknown => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${n.repeat(64)}`,
    size: 1,
    platform: { os: 'linux', architecture: arch },
  });

  it("choose this host's platform from an index, else say which there are", () => {
    const ix = parseManifest(
      Buffer.from(JSON.stringify({ manifests: [d('s390x', 'a'), d(hostPlatform().architecture, 'b')] })),
      undefined,
    );
    assert.equal(ix.kind, 'index');
    if (ix.kind === 'index') assert.equal(choosePlatform(ix, 'x').digest, `sha256:${'b'.repeat(64)}`);
    const other = parseManifest(Buffer.from(JSON.stringify({ manifests: [d('s390x', 'a')] })), undefined);
    if (other.kind === 'index')
      assert.throws(
        () => choosePlatform(other, 'x'),
        /no manifest for this host's platform .* it has: linux\/s390x/,
      );
  });

  it('refuse a layer type jaula cannot unpack, and schema 1', () => {
    const m = {
      schemaVersion: 2,
      config: { digest: `sha256:${'c'.repeat(64)}`, size: 2 },
      layers: [{ mediaType: 'application/x-foreign', digest: `sha256:${'d'.repeat(64)}`, size: 3 }],
    };
    assert.throws(
      () => parseManifest(Buffer.from(JSON.stringify(m)), undefined),
      /media type "application\/x-foreign"/,
    );
    assert.throws(() => parseManifest(Buffer.from('{"schemaVersion":1}'), undefined), /schema 1/);
  });
});
