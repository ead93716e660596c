import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostFiles } from './hostfiles.js';

describe('host paths of API clients', () => {
  const beneath = new HostFiles({ kind: 'beneath', dir: '/srv/files' });

  it('are absolute, for root too', () => {
    assert.throws(() => HostFiles.any.check('x.tar'), { code: 'invalid', message: /not an absolute path/ });
    assert.throws(() => beneath.check('files/x'), { code: 'invalid' });
    assert.equal(HostFiles.any.check('/etc/passwd'), '/etc/passwd');
  });

  it('over TCP lie beneath the directory, by text first, with no ".." (the same answer for any outside path)', () => {
    assert.equal(beneath.check('/srv/files/a/b.tar'), 'a/b.tar');
    assert.equal(beneath.check('/srv/files'), '.');
    assert.equal(beneath.check('/srv/files/sub/'), 'sub');
    for (const p of ['/srv/files2/x', '/srv/file', '/etc/passwd', '/srv/files/../x', '/srv/files/a/../../x'])
      assert.throws(() => beneath.check(p), { code: 'denied', message: /is not beneath \/srv\/files/ }, p);
  });

  it('without --host-files: none', () => {
    const none = new HostFiles({ kind: 'none' });
    assert.throws(() => none.check('/srv/files/x'), { code: 'denied', message: /--host-files DIR/ });
  });
});
