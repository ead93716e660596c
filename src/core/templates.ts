import * as fs from 'node:fs';
import { basename, join } from 'node:path';
import type { TemplateInfo, TemplateMeta } from '../api/types.js';
import { errnoOf, JaulaError, messageOf } from '../common/errors.js';
import { validateName } from '../common/names.js';
import { formatMiB } from '../common/size.js';
import { compressionOfName, copyTree, tarProgress } from '../os/copy.js';
import { mkdirp, readFileOr, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { HostFiles, type OpenedParent } from '../os/hostfiles.js';
import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import { runOk } from '../os/spawn.js';
import { tarCompressionFlag } from '../os/tar.js';
import { isDir, isWhiteout, walkTree } from '../os/walk.js';
import { libDir } from '../storage/barrier.js';
import { layout } from '../storage/layout.js';
import { copyDirAttrs, storedTemplateTree } from '../storage/tree.js';
import type { GuestConfig } from '../guest/config.js';
import { checkTemplateFile, extractTemplate } from './methods/template.js';
import { withStoppedGuest } from './running.js';
import { loadEveryConfig } from '../guest/store.js';
import { exportsDir, maker } from './template-leftovers.js';

/**
 * Stored templates: read-only trees in var/lib/jaula/templates/NAME/tree. Guests on overlay
 * storage use them as layers (nothing copied); dir guests copy them and reflink guests clone
 * them. A template is made from a stopped guest (save), or from an archive (import); export
 * writes one to an archive.
 */
/** A template's description (template.json), and with the guests that stack it (api/types.ts). */
export type { TemplateInfo, TemplateMeta };

type Progress = (line: string, fraction?: number) => void;

/** A tree's files, bytes and device nodes (whiteouts are not devices), for its description. */
export function treeStats(tree: string): { files: number; bytes: number; devices: number } {
  let files = 0;
  let bytes = 0;
  let devices = 0;
  for (const e of walkTree(tree)) {
    if (e.path === '') continue;
    files++;
    if (!isDir(e)) bytes += e.size;
    const type = e.mode & 0o170000;
    if ((type === 0o020000 || type === 0o060000) && !isWhiteout(e)) devices++;
  }
  return { files, bytes, devices };
}

/**
 * Device nodes are for privileged guests only (an unprivileged one could not make them either):
 * refuse to base an unprivileged guest on a stored template that has some.
 */
export function checkTemplateFor(cfg: GuestConfig, template: string): void {
  const n = readTemplateMeta(template)?.devices ?? 0;
  if (n > 0 && !cfg.privileged)
    throw new JaulaError(
      'invalid',
      `The template "${template}" holds ${n} device node${n === 1 ? '' : 's'} (only privileged guests may have device nodes): build the guest with --privileged, or use a template without them`,
    );
}

/** Guests whose root stacks this template as a layer (they need it to start). */
export function templateUsers(name: string, all: GuestConfig[] = loadEveryConfig()): string[] {
  return all.filter((c) => (c.storage.layers ?? []).includes(name)).map((c) => c.name);
}

export function readTemplateMeta(name: string): TemplateMeta | undefined {
  const text = readFileOr(layout.templateMeta(name), undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as TemplateMeta;
  } catch {
    return undefined;
  }
}

/** One stored template, by its name. */
export function templateInfo(name: string): TemplateInfo {
  const m = validateName(name, 'template') && readTemplateMeta(name);
  if (!m) throw new JaulaError('not_found', `There is no template "${name}" (see jaula template list)`);
  return { ...m, usedBy: templateUsers(name) };
}

export function listTemplates(): TemplateInfo[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(layout.templates());
  } catch {
    return [];
  }
  const all = loadEveryConfig();
  const out: TemplateInfo[] = [];
  for (const n of names.sort()) {
    if (n.startsWith('.')) continue;
    const m = readTemplateMeta(n);
    if (m) out.push({ ...m, usedBy: templateUsers(n, all) });
  }
  return out;
}

/**
 * Make a new template atomically: `fill` fills a tree in a temporary directory, which becomes
 * templates/NAME only when complete (an interrupted save or import leaves nothing).
 */
export async function makeTemplate(
  name: string,
  source: string,
  fill: (tree: string) => Promise<void>,
): Promise<TemplateMeta> {
  validateName(name, 'template');
  libDir();
  mkdirp(layout.templates(), 0o700);
  const final = layout.templateDir(name);
  if (fs.existsSync(final))
    throw new JaulaError(
      'exists',
      `A template named "${name}" already exists (see "jaula template list"; delete it first or choose another name)`,
    );
  const tmp = join(layout.templates(), `.${name}.tmp-${maker()}-${tmpSuffix()}`);
  mkdirp(join(tmp, 'tree'));
  try {
    await fill(join(tmp, 'tree'));
    const meta: TemplateMeta = {
      name,
      created: new Date().toISOString(),
      source,
      ...treeStats(join(tmp, 'tree')),
    };
    writeFileAtomic(join(tmp, 'template.json'), JSON.stringify(meta, null, 2) + '\n');
    await withLock(paths().locks, 'templates', 'The template store', async () => {
      if (fs.existsSync(final))
        throw new JaulaError('exists', `A template named "${name}" was made meanwhile; choose another name`);
      fs.renameSync(tmp, final);
    });
    return meta;
  } catch (e) {
    removeTree(tmp);
    throw e;
  }
}

/**
 * Save a stopped guest's tree as a template (its whole root as it sees it). With
 * `changesOnly` (overlay guests), only the guest's own changes: its upper and unified layer,
 * whiteouts and opaque directories kept, so the template can be stacked as a layer.
 */
export async function saveTemplate(
  guest: string,
  name: string,
  o: { changesOnly?: boolean; progress?: Progress } = {},
): Promise<TemplateMeta> {
  validateName(name, 'template');
  return withStoppedGuest(
    guest,
    'so that its files do not change while they are saved',
    async (cfg, driver) => {
      if (o.changesOnly && !driver.info.layers)
        throw new JaulaError(
          'unsupported',
          `Guest "${guest}" uses ${driver.info.name} storage, which has no layers: save its whole tree (without --changes)`,
        );
      const root = (await driver.mount(cfg)).hostView;
      try {
        return await makeTemplate(
          name,
          o.changesOnly ? `guest ${guest} (its changes only)` : `guest ${guest}`,
          async (tree) => {
            if (o.changesOnly) return saveChanges(driver.treePath(guest), driver.lowerDirs(cfg)[0], tree);
            copyDirAttrs(root, tree);
            const total = treeStats(root).bytes;
            o.progress?.(`Saving guest "${guest}" (${formatMiB(total)}) as template "${name}"`);
            await copyTree(root, tree, {
              reflink: 'auto',
              totalBytes: total,
              ...(o.progress ? { progress: o.progress } : {}),
            });
          },
        );
      } finally {
        await driver.unmount(cfg);
      }
    },
  );
}

/** The guest's own changes as a layer: the unified layer (linked), then the upper over it. */
async function saveChanges(upper: string, unified: string | undefined, tree: string): Promise<void> {
  copyDirAttrs(upper, tree);
  if (unified && fs.existsSync(unified)) await copyTree(unified, tree, { link: true });
  // Whiteouts and opaque directories of the upper hide what the unified layer has there.
  for (const e of walkTree(upper, { xattrs: true })) {
    if (e.path === '') continue;
    const opaque =
      isDir(e) && e.xattrs?.some(([k, v]) => k === 'trusted.overlay.opaque' && v.toString() === 'y');
    const shadowing = isWhiteout(e) || opaque || !isDir(e);
    if (shadowing) {
      const p = join(tree, e.path);
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(p);
      } catch {
        st = undefined;
      }
      if (st && (opaque || !st.isDirectory() || !isDir(e))) removeTree(p);
    }
  }
  await copyTree(upper, tree, { reflink: 'auto' });
}

/** Import an archive as a template; every member is checked first (src/os/tar.ts). */
export async function importTemplate(
  file: string,
  name?: string,
  progress?: Progress,
  hostFiles = HostFiles.any,
): Promise<TemplateMeta> {
  const n = name ?? basename(file).replace(/\.(tar|tar\.gz|tgz|tar\.zst|tzst)$/, '');
  validateName(n, 'template');
  // Opened once (beneath --host-files for a client over TCP); tools read what was opened.
  const src = hostFiles.openFile(file, 'archive');
  try {
    checkTemplateFile(src.path);
    return await makeTemplate(n, `file ${file}`, async (tree) => {
      // The store keeps device nodes; only privileged guests may be based on such a template.
      const s = await extractTemplate(src.path, tree, undefined, progress, { allowDevices: true });
      progress?.(`Unpacked ${s.entries} members (${formatMiB(s.bytes)})`);
    });
  } finally {
    src.close();
  }
}

/**
 * Export a template to an archive (.tar, .tar.gz, .tar.zst by its name), keeping owners, modes,
 * xattrs, hard links and device nodes. tar reads the tree without following any symlink in it
 * and without leaving its filesystem, so nothing outside the template is read. The archive is
 * written aside in FILE's directory (opened once: beneath --host-files for a client over TCP)
 * and renamed to FILE's name in that directory; what is at FILE must be a regular file or
 * nothing (never replaced: a symlink, a directory, a device).
 */
export async function exportTemplate(
  name: string,
  file: string,
  progress?: Progress,
  signal?: AbortSignal,
  hostFiles = HostFiles.any,
): Promise<void> {
  const tree = storedTemplateTree(name);
  const c = compressionOfName(file);
  const at = hostFiles.openParent(file, 'archive');
  try {
    await exportInto(name, tree, c, file, at, progress, signal);
  } finally {
    at.close();
  }
}

/** What is at `target` (named `file` to the user) may be replaced by an archive: a regular file or nothing. */
export function checkReplaceable(target: string, file: string): void {
  let old: fs.Stats | undefined;
  try {
    old = fs.lstatSync(target);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
  if (old && !old.isFile())
    throw new JaulaError(
      'exists',
      `"${file}" exists and is not a regular file (a ${old.isSymbolicLink() ? 'symlink' : old.isDirectory() ? 'directory' : 'special file'}): jaula replaces only an archive there; remove it or give another name`,
    );
}

async function exportInto(
  name: string,
  tree: string,
  c: ReturnType<typeof compressionOfName>,
  file: string,
  at: OpenedParent,
  progress?: Progress,
  signal?: AbortSignal,
): Promise<void> {
  const target = join(at.path, at.base);
  checkReplaceable(target, file);
  const meta = readTemplateMeta(name);
  const id = tmpSuffix();
  const tmpBase = `${at.base}.tmp-${id}`;
  const tmp = join(at.path, tmpBase);
  // The temporary archive is recorded first: if this process dies, the next reconcile (or
  // cleanTemplateLeftovers) removes it; the archive appears at FILE only complete.
  const record = join(exportsDir(), `${id}.json`);
  mkdirp(exportsDir());
  writeFileAtomic(
    record,
    JSON.stringify({ tmp: join(at.real, tmpBase), maker: maker(), template: name }) + '\n',
  );
  trace('export: recorded');
  const p = tarProgress(progress, 'archived', meta?.bytes);
  try {
    // The archive holds a whole tree (setuid programs, device nodes, /etc/shadow): root's only,
    // from its first byte (tar keeps the mode of the file it truncates).
    fs.closeSync(fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600));
    await runOk(
      [
        'tar',
        '-c',
        ...tarCompressionFlag(c),
        '--numeric-owner',
        '--xattrs',
        '--xattrs-include=*',
        '--sparse',
        '--one-file-system',
        ...p.args,
        '-f',
        tmp,
        '-C',
        tree,
        '.',
      ],
      {
        what: `Exporting template "${name}"`,
        dieWithParent: true,
        ...(signal ? { signal } : {}),
        ...(p.onStderr ? { onStderr: p.onStderr } : {}),
      },
    );
    trace('export: archived');
    fs.renameSync(tmp, target);
    trace('export: renamed');
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    fs.rmSync(record, { force: true });
    trace('export: record removed');
  }
}

/** Delete a template; refused while a guest stacks it as a layer. */
export async function deleteTemplate(name: string): Promise<void> {
  validateName(name, 'template');
  storedTemplateTree(name);
  await withLock(paths().locks, 'build', 'Building guests', async () => {
    const users = templateUsers(name);
    if (users.length)
      throw new JaulaError(
        'state',
        `The template "${name}" is used by ${users.length === 1 ? 'guest' : 'guests'} ${users.map((u) => `"${u}"`).join(', ')} (as a layer of their root): delete ${users.length === 1 ? 'it' : 'them'}, or "jaula layer remove GUEST ${name}", first`,
      );
    const gone = join(layout.templates(), `.${name}.deleting-${maker()}-${tmpSuffix()}`);
    fs.renameSync(layout.templateDir(name), gone);
    try {
      removeTree(gone);
      removeTree(layout.poolTemplate(name));
    } catch (e) {
      throw new JaulaError(
        'io',
        `The template "${name}" is gone, but removing its files failed: ${messageOf(e)}`,
      );
    }
  });
}
