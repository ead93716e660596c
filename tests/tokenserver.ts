/**
 * A token server for tests (Docker's token protocol, run by ocikit.ts's startTokenServer):
 * argv CERT KEY USER PASS COUNTFILE. It answers GET /token with an ES256 JWT (the signing
 * certificate in x5c) granting the scopes asked for, to USER:PASS only; prints its port; appends
 * a byte to COUNTFILE per token.
 */
import { createPrivateKey, sign, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

const [cert = '', key = '', user = '', pass = '', count = ''] = process.argv.slice(2);
const der = new X509Certificate(fs.readFileSync(cert)).raw.toString('base64');
const pk = createPrivateKey(fs.readFileSync(key));
const b64 = (x: unknown): string => Buffer.from(JSON.stringify(x)).toString('base64url');

const srv = http.createServer((req, res) => {
  const u = new URL(req.url ?? '/', 'http://x');
  if (req.headers.authorization !== `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`) {
    res.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    return;
  }
  const access = u.searchParams.getAll('scope').flatMap((s) => {
    const [type, name, actions] = s.split(':');
    return type && name ? [{ type, name, actions: (actions ?? '').split(',') }] : [];
  });
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'ES256', typ: 'JWT', x5c: [der] });
  const body = b64({
    iss: 'jaula-test-issuer',
    sub: user,
    aud: u.searchParams.get('service'),
    exp: now + 300,
    nbf: now - 10,
    iat: now,
    jti: String(Math.random()),
    access,
  });
  const sig = sign('sha256', Buffer.from(`${head}.${body}`), { key: pk, dsaEncoding: 'ieee-p1363' });
  fs.appendFileSync(count, '.');
  res
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ token: `${head}.${body}.${sig.toString('base64url')}` }));
});
srv.listen(0, '127.0.0.1', () => process.stdout.write(`${(srv.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => srv.close(() => process.exit(0)));
