import { randomUUID } from 'node:crypto';

/**
 * A new, never reused blob key. Random rather than derived from the SOP Instance UID: a UID can arrive
 * again with other bytes (versions), and S3 then needs no rename. Two levels of fan-out keep directories
 * of a filesystem store small (256 x 256 folders).
 */
export function newBlobKey(): string {
  const id = randomUUID();
  return `${id.slice(0, 2)}/${id.slice(2, 4)}/${id}.dcm`;
}
