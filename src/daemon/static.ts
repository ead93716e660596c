/** The dashboard's static files: web/dist (made by `npm run build`; xterm.js is bundled into app.js). */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import { join } from 'node:path';
import { projectDir } from '../os/paths.js';
import { sendJson } from './http.js';

const STATIC: Record<string, [string, string]> = {
  '/': ['web/dist/index.html', 'text/html; charset=utf-8'],
  '/index.html': ['web/dist/index.html', 'text/html; charset=utf-8'],
  '/assets/app.js': ['web/dist/app.js', 'text/javascript; charset=utf-8'],
  '/assets/app.css': ['web/dist/app.css', 'text/css; charset=utf-8'],
  '/assets/xterm.css': ['web/dist/xterm.css', 'text/css; charset=utf-8'],
};

/** The dashboard's page: its own scripts, styles and connections only (the stream and console are same-origin). */
const PAGE_CSP =
  "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function serveStatic(method: string, pathname: string, res: http.ServerResponse): void {
  const hit = Object.prototype.hasOwnProperty.call(STATIC, pathname) ? STATIC[pathname] : undefined;
  if (!hit) return sendJson(res, 404, { error: { code: 'not_found', message: 'No such file' } });
  if (method !== 'GET' && method !== 'HEAD')
    return sendJson(
      res,
      405,
      { error: { code: 'usage', message: `${pathname} takes GET, not ${method}` } },
      { allow: 'GET, HEAD' },
    );
  let data: Buffer;
  try {
    data = fs.readFileSync(join(projectDir, hit[0]));
  } catch {
    return sendJson(res, 404, {
      error: { code: 'not_found', message: `${hit[0]} is missing: run "npm run build"` },
    });
  }
  res.writeHead(200, {
    'content-type': hit[1],
    'content-length': data.length,
    'cache-control': 'no-cache',
    'content-security-policy': PAGE_CSP,
  });
  res.end(method === 'HEAD' ? undefined : data);
}
