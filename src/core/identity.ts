import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '../os/fs.js';
import { GuestFs } from '../os/guestfs.js';
import { run } from '../os/spawn.js';

const SSH_KEY = /^ssh_host_([a-z0-9]+)_key(\.pub)?$/;

/**
 * Give a copied tree (a clone, or a guest built from a template) an identity of its own: a new
 * /etc/machine-id (when the source had one; an empty one stays empty, for systemd to fill at
 * boot), and new SSH host keys (made on the host with ssh-keygen and written through GuestFs;
 * without ssh-keygen they are only removed, and the guest's sshd setup makes them). Returns a
 * line per change.
 */
export async function newIdentity(root: string, hostname: string): Promise<string[]> {
  const changes: string[] = [];
  const types = GuestFs.with(root, (g) => {
    const mid = g.lstat('/etc/machine-id');
    if (mid?.isFile() && (g.readText('/etc/machine-id') ?? '').trim()) {
      const id = `${randomBytes(16).toString('hex')}\n`;
      g.writeFile('/etc/machine-id', id, { mode: mid.mode & 0o7777, uid: mid.uid, gid: mid.gid });
      const dbus = g.lstat('/var/lib/dbus/machine-id');
      if (dbus?.isFile())
        g.writeFile('/var/lib/dbus/machine-id', id, {
          mode: dbus.mode & 0o7777,
          uid: dbus.uid,
          gid: dbus.gid,
        });
      changes.push('/etc/machine-id: a new one');
    }
    const found = new Set<string>();
    if (g.lstat('/etc/ssh')?.isDirectory())
      for (const f of g.readdir('/etc/ssh')) {
        const m = SSH_KEY.exec(f);
        if (!m?.[1]) continue;
        g.unlink(`/etc/ssh/${f}`);
        found.add(m[1]);
      }
    return [...found].sort();
  });
  if (!types.length) return changes;
  const keygen = which('ssh-keygen');
  if (!keygen) {
    changes.push(
      `/etc/ssh: host keys (${types.join(', ')}) removed; ssh-keygen is not on the host to make new ones`,
    );
    return changes;
  }
  const tmp = fs.mkdtempSync(join(tmpdir(), 'jaula-keys-'));
  try {
    const made: string[] = [];
    for (const t of types) {
      const f = join(tmp, `ssh_host_${t}_key`);
      const r = await run([keygen, '-q', '-N', '', '-t', t, '-C', `root@${hostname}`, '-f', f]);
      if (r.code !== 0) continue; // a type this ssh-keygen cannot make (e.g. dsa)
      GuestFs.with(root, (g) => {
        g.writeFile(`/etc/ssh/ssh_host_${t}_key`, fs.readFileSync(f), { mode: 0o600, uid: 0, gid: 0 });
        g.writeFile(`/etc/ssh/ssh_host_${t}_key.pub`, fs.readFileSync(`${f}.pub`), {
          mode: 0o644,
          uid: 0,
          gid: 0,
        });
      });
      made.push(t);
    }
    changes.push(`/etc/ssh: new host keys (${made.join(', ') || 'none could be made'})`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return changes;
}
