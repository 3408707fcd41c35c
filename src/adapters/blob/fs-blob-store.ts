import { randomUUID } from 'node:crypto';
import { access, constants, mkdir, open, opendir, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BlobNotFoundError } from '../../ports/blob-store.ts';
import type { BlobReader, BlobStore, BlobWriter, ByteRange } from '../../ports/blob-store.ts';
import { RESERVED_INCOMING_DIR, assertValidBlobKey, assertValidRange } from './blob-key.ts';
import { BlobWriterBase } from './blob-writer.ts';

export interface FsBlobStoreOptions {
  /**
   * fsync files and directories on commit (default true). Only turn off for throw-away data (tests,
   * benchmarks of everything else): without it a power loss can lose or truncate committed objects.
   */
  fsync?: boolean;
}

/**
 * BlobStore over a local folder (`<data>/blobs`). An object `a/b/c.dcm` is the file `<root>/a/b/c.dcm`.
 * Writes go to `<root>/.incoming/<uuid>`; commit renames the complete file into place and then makes its
 * data and its name durable at once (fdatasync of the file and fsync of the folder, concurrently: one
 * disk round trip less per object than syncing the file before the rename, 0.3 ms of 2 per CT slice in
 * bench:dimse). So a key names a complete file from the rename on, and a durable one once commit()
 * resolves; after a crash during commit a key may name a file that nothing references yet (callers index
 * a key only after commit, and `atrium verify` reports such files as unreferenced). Empty parent folders
 * are left behind by delete() (keys are random, so fan-out folders get reused; removing them would race
 * with concurrent commits).
 *
 * Limitation: a key cannot be both an object and a folder of other objects (`a` and `a/b`); S3 allows
 * that, a file system does not. Atrium's random keys never do this.
 */
export class FsBlobStore implements BlobStore {
  readonly kind = 'fs';
  readonly root: string;
  readonly incomingDir: string;
  readonly #fsync: boolean;
  #ready: Promise<void> | undefined;
  readonly #knownFolders = new Set<string>();

  constructor(root: string, options: FsBlobStoreOptions = {}) {
    this.root = path.resolve(root);
    this.incomingDir = path.join(this.root, RESERVED_INCOMING_DIR);
    this.#fsync = options.fsync ?? true;
  }

  async createWriter(key: string): Promise<BlobWriter> {
    assertValidBlobKey(key);
    await this.#ensureDirs();
    // The writer's PID in the name lets start-up cleanup tell a crashed writer's file from one that a
    // live process (an `atrium import` beside `atrium serve`) is still writing.
    const tempPath = path.join(this.incomingDir, `${process.pid}-${randomUUID()}.tmp`);
    const finalPath = this.#pathOf(key);
    const parent = path.dirname(finalPath);
    // The temp file and the fan-out folder are made while the first bytes arrive (writes are gathered
    // anyway): creating a file took 0.7 ms (median, bench:dimse), which a sender waited for on every
    // object when the writer was handed out only once the file existed. A failure surfaces at the first
    // write or at commit. The folder is made once per process (commit makes it again should someone
    // have removed it since).
    const opening = open(tempPath, 'wx', 0o644);
    const creatingParent = this.#knownFolders.has(parent) ? Promise.resolve(undefined) : mkdir(parent, { recursive: true });
    if (this.#knownFolders.size > 10_000) this.#knownFolders.clear();
    this.#knownFolders.add(parent);
    return new FsBlobWriter(opening, tempPath, finalPath, this.root, this.#fsync, creatingParent);
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertValidRange(range);
    const { handle } = await this.#openCommitted(key);
    const start = range?.start ?? 0;
    const end = range?.end;
    if (end !== undefined && end <= start) {
      await handle.close();
      return Readable.from([]);
    }
    // createReadStream's `end` is inclusive; it stops at end of file when `end` lies beyond it.
    return handle.createReadStream({ start, end: end === undefined ? undefined : end - 1, autoClose: true });
  }

  async openReader(key: string): Promise<BlobReader> {
    const { handle, size } = await this.#openCommitted(key);
    return {
      size,
      read: async (into, position) => (await handle.read(into, 0, into.length, position)).bytesRead,
      close: async () => await handle.close(),
    };
  }

  /** The committed object's file, open for reading, and its size; BlobNotFoundError when there is none. */
  async #openCommitted(key: string): Promise<{ handle: FileHandle; size: number }> {
    assertValidBlobKey(key);
    let handle: FileHandle;
    try {
      handle = await open(this.#pathOf(key), 'r');
    } catch (err) {
      if (isMissing(err)) throw new BlobNotFoundError(key);
      throw err;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new BlobNotFoundError(key);
      return { handle, size: info.size };
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  async stat(key: string): Promise<{ size: number; modifiedAt: Date } | null> {
    assertValidBlobKey(key);
    try {
      const info = await stat(this.#pathOf(key));
      return info.isFile() ? { size: info.size, modifiedAt: info.mtime } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async probe(): Promise<string> {
    // Where writes go first: if a file can be made there, an ingest can start.
    await this.#ensureDirs();
    await access(this.incomingDir, constants.W_OK);
    return this.root;
  }

  async delete(key: string): Promise<void> {
    assertValidBlobKey(key);
    try {
      await unlink(this.#pathOf(key));
    } catch (err) {
      // EISDIR/EPERM: the key names a folder of other objects, so there is no object to delete.
      if (isMissing(err) || hasCode(err, 'EISDIR') || hasCode(err, 'EPERM')) return;
      throw err;
    }
  }

  async *list(): AsyncIterable<string> {
    const stack: string[] = [''];
    while (stack.length > 0) {
      const rel = stack.pop()!;
      let dir;
      try {
        dir = await opendir(path.join(this.root, rel));
      } catch (err) {
        if (isMissing(err)) continue; // root not created yet, or a folder removed while walking
        throw err;
      }
      for await (const entry of dir) {
        if (rel === '' && entry.name === RESERVED_INCOMING_DIR) continue;
        const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (entry.isDirectory()) stack.push(childRel);
        else if (entry.isFile()) yield childRel;
      }
    }
  }

  /**
   * Deletes files left in `.incoming` by writers that neither committed nor aborted (a crash) and
   * whose last modification is at least `olderThanMs` old. With the default 0 it also removes the
   * temp files of writers still running in this process, so call it at start-up, before writing.
   */
  async cleanupIncomplete(olderThanMs = 0): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.incomingDir);
    } catch (err) {
      if (isMissing(err)) return 0;
      throw err;
    }
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const name of names) {
      const file = path.join(this.incomingDir, name);
      try {
        const info = await stat(file);
        if (info.mtimeMs > cutoff && !writerIsGone(name)) continue;
        await unlink(file);
        removed++;
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
    return removed;
  }

  async close(): Promise<void> {}

  #pathOf(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  #ensureDirs(): Promise<void> {
    this.#ready ??= mkdir(this.incomingDir, { recursive: true }).then(
      () => undefined,
      (err: unknown) => {
        this.#ready = undefined;
        throw err;
      },
    );
    return this.#ready;
  }
}

/** The filesystem's steps of a writer (the lifecycle around them is BlobWriterBase's). */
class FsBlobWriter extends BlobWriterBase {
  /** The temp file, being created; undefined once closed. */
  #handle: Promise<FileHandle> | undefined;
  readonly #tempPath: string;
  readonly #finalPath: string;
  readonly #root: string;
  readonly #fsync: boolean;
  /** The first folder mkdir created for this key's parent, if any: its entry must be made durable too. */
  readonly #createdParent: Promise<string | undefined>;
  /**
   * Chunks not yet written. Network transports hand over 16 KiB PDU fragments; one write per fragment was a
   * thread-pool round trip each, and most of the time a C-STORE took (bench:dimse).
   */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #renamed = false;

  constructor(handle: Promise<FileHandle>, tempPath: string, finalPath: string, root: string, fsync: boolean, createdParent: Promise<string | undefined>) {
    super();
    // Both are awaited at the first batch written, commit or abort; until then a rejection must not go unhandled.
    handle.catch(() => {});
    createdParent.catch(() => {});
    this.#handle = handle;
    this.#createdParent = createdParent;
    this.#tempPath = tempPath;
    this.#finalPath = finalPath;
    this.#root = root;
    this.#fsync = fsync;
  }

  protected put(chunk: Uint8Array): Promise<void> | undefined {
    // The caller leaves the chunk alone from now on (BlobWriter.write): keep a reference, not a copy.
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.byteLength;
    return this.#pendingBytes < WRITE_BATCH_BYTES ? undefined : this.#writePending();
  }

  async #writePending(): Promise<void> {
    let buffers = this.#pending;
    let left = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (left === 0) return;
    const handle = await this.#handle!;
    while (left > 0) {
      const { bytesWritten } = await handle.writev(buffers);
      left -= bytesWritten;
      if (left > 0) buffers = remainderOf(buffers, bytesWritten);
    }
  }

  protected async finalize(): Promise<void> {
    await this.#writePending();
    const handle = await this.#handle!;
    const parent = path.dirname(this.#finalPath);
    let firstCreated = await this.#createdParent;
    try {
      await rename(this.#tempPath, this.#finalPath);
    } catch (err) {
      if (!isMissing(err)) throw err;
      firstCreated = await mkdir(parent, { recursive: true });
      await rename(this.#tempPath, this.#finalPath);
    }
    this.#renamed = true;
    if (this.#fsync) {
      // Make the rename durable, and the entries of any folders mkdir just created.
      const stop = firstCreated === undefined ? parent : path.dirname(firstCreated);
      const dirs: string[] = [];
      for (let d = parent; ; d = path.dirname(d)) {
        dirs.push(d);
        if (d === stop || d === this.#root || d === path.dirname(d)) break;
      }
      // Data and name in one go (see the class comment).
      await Promise.all([handle.datasync(), (async () => { for (const dir of dirs) await fsyncDir(dir); })()]);
    }
    this.#handle = undefined;
    await handle.close();
  }

  /** A commit that failed after the rename takes the renamed file away too: nothing indexes it. */
  protected async discard(): Promise<void> {
    this.#pending = [];
    this.#pendingBytes = 0;
    const handle = this.#handle;
    this.#handle = undefined;
    // A temp file that could not be created leaves nothing to close or remove (unlink below finds nothing).
    if (handle) await handle.then((h) => h.close()).catch(() => {});
    await unlink(this.#renamed ? this.#finalPath : this.#tempPath).catch((err: unknown) => {
      if (!isMissing(err)) throw err;
    });
  }
}

/** Up to this many bytes are gathered before one write: a typical CT slice is one write. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** What is left of `buffers` after the first `written` bytes (a short writev). */
function remainderOf(buffers: Uint8Array[], written: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of buffers) {
    if (written >= b.byteLength) { written -= b.byteLength; continue; }
    out.push(written > 0 ? b.subarray(written) : b);
    written = 0;
  }
  return out;
}

/**
 * Folders recently fsynced stay open: objects received together land in the same day's folders, and an
 * open handle makes each further fsync one system call instead of open, fsync and close. A handle let go
 * while an fsync is still using it is closed when that fsync ends.
 */
interface OpenFolder { handle: Promise<FileHandle>; users: number; evicted: boolean }
const openFolders = new Map<string, OpenFolder>();
// A day's 256 fan-out folders, and the previous day's around midnight.
const MAX_OPEN_FOLDERS = 320;

async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  let folder = openFolders.get(dir);
  if (folder) {
    openFolders.delete(dir); // re-inserted below: most recently used last
  } else {
    folder = { handle: open(dir, 'r'), users: 0, evicted: false };
    if (openFolders.size >= MAX_OPEN_FOLDERS) {
      const [oldest, entry] = openFolders.entries().next().value!;
      openFolders.delete(oldest);
      entry.evicted = true;
      if (entry.users === 0) entry.handle.then((h) => h.close()).catch(() => {});
    }
  }
  openFolders.set(dir, folder);
  folder.users++;
  try {
    await (await folder.handle).sync();
  } catch (err) {
    openFolders.delete(dir);
    folder.evicted = true;
    throw err;
  } finally {
    folder.users--;
    if (folder.evicted && folder.users === 0) folder.handle.then((h) => h.close()).catch(() => {});
  }
}

function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** True when the temp file names a writer process that no longer runs (another PID than ours, not alive). */
function writerIsGone(name: string): boolean {
  const pid = Number(name.split('-', 1)[0]);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function isMissing(err: unknown): boolean {
  return hasCode(err, 'ENOENT') || hasCode(err, 'ENOTDIR');
}
