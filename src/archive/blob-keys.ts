import { randomUUID } from 'node:crypto';

/**
 * A new, never reused blob key: `YYYY/MM/DD/xx/<uuid>.dcm` (UTC date of receipt, then 256-way fan-out).
 * Random rather than derived from the SOP Instance UID: a UID can arrive again with other bytes (versions),
 * and S3 then needs no rename. Grouped by day so that objects received together share folders: the
 * filesystem store then creates few folders and keeps the ones in use open for their fsync, and an
 * administrator can see, back up or tier an archive by day.
 */
export function newBlobKey(now = new Date()): string {
  const id = randomUUID();
  const day = now.toISOString().slice(0, 10).replaceAll('-', '/');
  return `${day}/${id.slice(0, 2)}/${id}.dcm`;
}
