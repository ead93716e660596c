/**
 * A registry with TLS (a test CA) and token authentication (Docker's token protocol, a token
 * server in this test): jaula follows the registry's challenge, fetches a token with the
 * credentials given (--creds, or the auth file), trusts the CA only when told
 * (NODE_EXTRA_CA_CERTS) and never falls back to plain http for a TLS registry it cannot verify.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestRoot } from './helpers.js';
import {
  busyboxMembers,
  layerTar,
  ociLayout,
  push,
  startRegistry,
  startTokenServer,
  testCa,
  type Registry,
} from './ocikit.js';

const t = new TestRoot();
let reg: Registry | undefined;
let tok: Awaited<ReturnType<typeof startTokenServer>> | undefined;
after(async () => {
  await reg?.stop();
  await tok?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

describe('a registry with TLS and token authentication', () => {
  let ref = '';
  let env: NodeJS.ProcessEnv = {};
  before(async () => {
    const ca = testCa(t);
    tok = await startTokenServer(t, 'alice', 'secret');
    reg = await startRegistry(t, 'auth', {
      tls: { cert: ca.cert, key: ca.key },
      token: { realm: tok.realm, cert: tok.cert },
    });
    const certDir = t.path('certs.d');
    fs.mkdirSync(certDir);
    fs.copyFileSync(ca.ca, `${certDir}/ca.crt`);
    const dir = ociLayout(t.path('img'), 'v1', [
      { layers: [layerTar(busyboxMembers())], config: { Cmd: ['/bin/sh'] } },
    ]);
    ref = `${reg.host}/private/app:v1`;
    push(dir, 'v1', ref, { creds: 'alice:secret', ca: certDir });
    env = { NODE_EXTRA_CA_CERTS: ca.ca };
  });

  it('refuses without credentials, saying how to give them', () => {
    const r = t.jaula(['image', 'pull', ref], { env });
    assert.equal(r.code, 13, r.stderr);
    assert.match(
      r.stderr,
      /token server of ".*" refused a token .*it may need credentials \(--creds USER:PASS\)/,
    );
  });

  it('refuses wrong credentials', () => {
    const r = t.jaula(['image', 'pull', ref, '--creds', 'alice:wrong'], { env });
    assert.equal(r.code, 13, r.stderr);
    assert.match(r.stderr, /check the credentials/);
  });

  it('pulls with --creds, fetching a token from the realm the challenge names', () => {
    const before = tok?.issued() ?? 0;
    const r = t.ok(['image', 'pull', ref, '--creds', 'alice:secret'], { env });
    assert.match(r.stdout, /Pulled image ".*private\/app:v1"/);
    assert.ok((tok?.issued() ?? 0) > before, 'a token was issued');
  });

  it("pulls with the auth file's credentials (Docker's config.json shape)", () => {
    t.ok(['image', 'delete', ref]);
    fs.mkdirSync(t.path('etc/jaula'), { recursive: true });
    const auth = Buffer.from('alice:secret').toString('base64');
    fs.writeFileSync(
      t.path('etc/jaula/auth.json'),
      JSON.stringify({ auths: { [reg?.host ?? '']: { auth } } }),
    );
    t.ok(['image', 'pull', ref], { env });
    fs.rmSync(t.path('etc/jaula/auth.json'));
  });

  it('does not trust a certificate it cannot verify, and does not fall back to plain http', () => {
    const r = t.jaula(['image', 'pull', ref, '--creds', 'alice:secret']);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /could not be reached over https: .*certificate/);
  });
});
