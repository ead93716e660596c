import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { JaulaError, messageOf } from '../../common/errors.js';
import { formatMiB } from '../../common/size.js';
import { mkdirp } from '../../os/fs.js';
import type { RegistryClient } from './http.js';
import { blobPath, partialBlobPath } from './store.js';

/** How many times a dropped transfer is taken up again where it stopped (Range). */
const RESUMES = 5;

/** "12.0/45.3 MiB at 8.1 MiB/s", at most every half second. */
export function rateMeter(
  label: string,
  total: number,
  progress?: (l: string, f?: number) => void,
): (n: number) => void {
  const t0 = Date.now();
  let last = 0;
  let done = 0;
  return (n: number) => {
    done += n;
    const now = Date.now();
    if (!progress || (now - last < 500 && done < total)) return;
    last = now;
    const rate = done / Math.max(0.001, (now - t0) / 1000);
    progress(
      `${label}: ${formatMiB(done)}/${formatMiB(total)} at ${formatMiB(rate)}/s`,
      total ? done / total : undefined,
    );
  };
}

async function hashFile(p: string, h: Hash): Promise<void> {
  for await (const c of fs.createReadStream(p)) h.update(c as Buffer);
}

/**
 * Fetch a blob into the blob store, its bytes checked against `digest` as they stream. A
 * transfer that drops is taken up where it stopped with a Range request (a partial blob of an
 * earlier, interrupted pull too); a blob larger than `size` or whose bytes do not match is
 * refused and its partial file removed.
 */
export async function fetchBlob(
  client: RegistryClient,
  digest: string,
  size: number,
  label: string,
  progress?: (l: string, f?: number) => void,
): Promise<string> {
  const final = blobPath(digest);
  if (fs.existsSync(final)) return final;
  const part = partialBlobPath(digest);
  mkdirp(dirname(part), 0o700);
  mkdirp(dirname(final), 0o700);
  try {
    if (fs.statSync(part).size > size) fs.rmSync(part);
  } catch {
    /* no partial blob */
  }
  const meter = rateMeter(label, size, progress);
  let got: { have: number; digest: string } | undefined;
  for (let attempt = 0; !got; attempt++) {
    try {
      got = await transfer(client, digest, size, part, meter, label);
    } catch (e) {
      const resumable = e instanceof JaulaError && e.code === 'io';
      if (!resumable || attempt >= RESUMES) {
        if (!resumable) fs.rmSync(part, { force: true }); // (a dropped one is taken up next time)
        throw e;
      }
      progress?.(
        `${label}: the transfer dropped at ${formatMiB(fs.existsSync(part) ? fs.statSync(part).size : 0)} (${messageOf(e)}); resuming`,
      );
    }
  }
  if (got.have !== size || got.digest !== digest) {
    fs.rmSync(part, { force: true });
    throw new JaulaError(
      'invalid',
      `The ${label} is refused: its bytes (${got.have}) have the digest ${got.digest}, not ${digest} (${size} bytes) as the manifest says; the partial blob was removed`,
    );
  }
  fs.renameSync(part, final);
  return final;
}

/**
 * One request for the blob's bytes from what the partial file holds on (Range), appended to
 * it; the bytes held and their digest.
 */
async function transfer(
  client: RegistryClient,
  digest: string,
  size: number,
  part: string,
  meter: (n: number) => void,
  label: string,
): Promise<{ have: number; digest: string }> {
  let have = 0;
  try {
    have = fs.statSync(part).size;
  } catch {
    have = 0;
  }
  const a = await client.request(
    'GET',
    `/v2/${client.repo}/blobs/${digest}`,
    have ? { range: `bytes=${have}-` } : {},
  );
  if (a.status === 404) {
    a.body.resume();
    throw new JaulaError('not_found', `The registry "${client.host}" has no ${label} (${digest})`);
  }
  if (a.status !== 200 && a.status !== 206) {
    a.body.resume();
    throw new JaulaError(
      'invalid',
      `The registry "${client.host}" answered HTTP ${a.status} for the ${label}`,
    );
  }
  if (have && a.status === 200) {
    fs.truncateSync(part, 0); // the registry sends the whole blob again: start over
    have = 0;
  }
  const hash = createHash('sha256');
  if (have) await hashFile(part, hash);
  meter(0);
  const fd = fs.openSync(part, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
  try {
    for await (const c of a.body) {
      const b = c as Buffer;
      if (have + b.length > size) {
        a.body.destroy();
        throw new JaulaError(
          'invalid',
          `The ${label} is refused: it is larger than the ${size} bytes the manifest says`,
        );
      }
      fs.writeSync(fd, b);
      hash.update(b);
      have += b.length;
      meter(b.length);
    }
  } catch (e) {
    if (e instanceof JaulaError) throw e;
    throw new JaulaError('io', `The transfer of the ${label} dropped: ${messageOf(e)}`, { cause: e });
  } finally {
    fs.closeSync(fd);
  }
  if (have < size)
    throw new JaulaError('io', `The transfer of the ${label} ended early (${have} of ${size} bytes)`);
  return { have, digest: `sha256:${hash.digest('hex')}` };
}
