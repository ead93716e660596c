import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { layout } from './layout.js';

/** The tree of a stored template, which must exist. */
export function storedTemplateTree(name: string): string {
  const tree = layout.templateTree(name);
  if (!fs.existsSync(layout.templateMeta(name)))
    throw new JaulaError(
      'not_found',
      `There is no stored template "${name}" (see "jaula template list"; import one with "jaula template import FILE ${name}")`,
    );
  return tree;
}

/** Give `dir` the owner and mode of `like` (an upper's root takes its template's). */
export function copyDirAttrs(like: string, dir: string): void {
  const st = fs.lstatSync(like);
  fs.chownSync(dir, st.uid, st.gid);
  fs.chmodSync(dir, st.mode & 0o7777);
}
