import { JaulaError } from '../../common/errors.js';
import { bool, str } from '../args.js';
import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const remote: Command = {
  summary: 'other jaulads this host knows by name (for jaula migrate)',
  help: `Usage: jaula remote add NAME URL --token FILE [--accept-certificate | --fingerprint SHA256:...]
       jaula remote list [--format table|json]
       jaula remote remove NAME

A remote is another host's jaulad listening on TCP ("jaula daemon --listen ADDRESS:PORT
--token-file FILE --tls-cert CERT --tls-key KEY" there), known here by NAME, as "incus remote"
does. "add" connects once: it shows the certificate's SHA-256 fingerprint and pins it (every
later connection must show the same certificate), and checks the token (the contents of the
remote's --token-file, copied here into a root-only file). Without --accept-certificate or
--fingerprint it only shows the fingerprint: compare it with the one on that host
("openssl x509 -noout -fingerprint -sha256 -in CERT") before accepting it.

Examples:
  jaula remote add b https://10.0.0.2:7443 --token /root/b.token --accept-certificate
  jaula remote list
  jaula migrate web1 b`,
  verbs: ['add', 'list', 'remove'],
  specs: {
    token: { type: 'string' },
    fingerprint: { type: 'string' },
    'accept-certificate': { type: 'bool' },
    format: { type: 'string' },
  },
  async run(p) {
    const [verb, name, url, ...extra] = p.positionals;
    const e = await engine();
    if (verb === 'add') {
      if (!name || !url || extra.length)
        throw new JaulaError('usage', 'jaula remote add NAME URL --token FILE (see "jaula remote --help")');
      const tokenFile = str(p, 'token');
      if (!tokenFile)
        throw new JaulaError(
          'usage',
          "jaulad's TCP API needs its token: give --token FILE (a copy of the remote's --token-file)",
        );
      const fingerprint = str(p, 'fingerprint');
      const r = await e.addRemote({
        name,
        url,
        tokenFile,
        ...(fingerprint ? { fingerprint } : {}),
        ...(bool(p, 'accept-certificate') ? { acceptCertificate: true } : {}),
      });
      out(`Added the remote "${r.name}" (${r.url}${r.fingerprint ? `, certificate ${r.fingerprint}` : ''}).`);
      return 0;
    }
    if (verb === 'list') {
      const list = await e.listRemotes();
      if (formatOf(p) === 'json') json(list);
      else
        out(
          table(
            ['NAME', 'URL', 'CERTIFICATE'],
            list.map((r) => [r.name, r.url, r.fingerprint || '(plain HTTP, loopback)']),
          ),
        );
      return 0;
    }
    if (verb === 'remove') {
      if (!name || url) throw new JaulaError('usage', 'jaula remote remove NAME');
      out(`Removed the remote "${(await e.removeRemote({ name })).deleted}" and its token.`);
      return 0;
    }
    throw new JaulaError(
      'usage',
      `jaula remote add|list|remove (not ${JSON.stringify(verb ?? '')}; see "jaula remote --help")`,
    );
  },
};
