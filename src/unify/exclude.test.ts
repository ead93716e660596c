import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_EXCLUDES, excluded, parseExcludes } from './exclude.js';

describe("hashify's exclude list (util-vserver syntax)", () => {
  it('excludes a path and what is below it, not its namesakes', () => {
    const r = parseExcludes(['/etc']);
    assert.equal(excluded(r, '/etc'), true);
    assert.equal(excluded(r, '/etc/passwd'), true);
    assert.equal(excluded(r, '/etcetera/x'), false);
    assert.equal(excluded(r, '/usr/etc/x'), false);
  });
  it('takes the first matching rule: +/path includes before a later exclude', () => {
    const r = parseExcludes(['+/var/lib/dpkg/info', '/var', '# a comment', '']);
    assert.equal(excluded(r, '/var/lib/dpkg/info/bash.list'), false);
    assert.equal(excluded(r, '/var/lib/dpkg/status'), true);
    assert.equal(excluded(r, '/usr/bin/bash'), false);
  });
  it('matches ~globs within path components, and what is below a match', () => {
    const r = parseExcludes(['~/usr/share/doc/*/changelog*', '-~/usr/lib/*.so.?']);
    assert.equal(excluded(r, '/usr/share/doc/bash/changelog.gz'), true);
    assert.equal(excluded(r, '/usr/share/doc/bash/copyright'), false);
    assert.equal(excluded(r, '/usr/share/doc/a/b/changelog'), false, '"*" stays within one component');
    assert.equal(excluded(r, '/usr/lib/libx.so.1'), true);
    assert.equal(excluded(r, '/usr/lib/libx.so.10'), false);
    assert.equal(excluded(parseExcludes(['~/opt/*']), '/opt/app/bin/tool'), true);
  });
  it('has defaults for configuration, state and devices, and refuses rules that are not paths', () => {
    const r = parseExcludes(DEFAULT_EXCLUDES);
    for (const p of ['/etc/shadow', '/var/lib/x', '/home/u/f', '/root/.ssh/id', '/dev/null', '/tmp/x'])
      assert.equal(excluded(r, p), true, p);
    assert.equal(excluded(r, '/usr/bin/perl'), false);
    assert.throws(() => parseExcludes(['etc']), /not a path inside the guest/);
  });
});
