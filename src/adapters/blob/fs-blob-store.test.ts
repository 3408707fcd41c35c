import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, open, readdir, rm, stat, writeFile, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BlobNotFoundError } from '../../ports/blob-store.ts';
import { blobStoreContract, listAll, nestedKey, put } from './blob-store.contract.ts';
import { FsBlobStore } from './fs-blob-store.ts';

async function makeFsStore(): Promise<{ store: FsBlobStore; root: string; cleanup(): Promise<void>; failWrites(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-fs-blob-'));
  const root = path.join(dir, 'blobs');
  let restoreWrites: (() => void) | undefined;
  return {
    store: new FsBlobStore(root),
    root,
    failWrites: async () => {
      restoreWrites ??= await failFileWrites();
    },
    cleanup: async () => {
      restoreWrites?.();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A full disk, from the writer's side: every FileHandle.writev in this process fails with ENOSPC until
 * the returned function is called. The class is not exported, so it is reached through an open handle.
 */
async function failFileWrites(): Promise<() => void> {
  const probe = await open(os.devNull, 'r');
  const prototype = Object.getPrototypeOf(probe) as { writev: unknown };
  await probe.close();
  assert.ok(Object.hasOwn(prototype, 'writev'), 'FileHandle.prototype.writev');
  const original = prototype.writev;
  prototype.writev = async () => {
    throw Object.assign(new Error('ENOSPC: no space left on device, writev (injected)'), { code: 'ENOSPC' });
  };
  return () => {
    prototype.writev = original;
  };
}

blobStoreContract('FsBlobStore', makeFsStore);

describe('FsBlobStore specifics', () => {
  test('objects are plain files at <root>/<key>; .incoming is empty after commit and abort', async () => {
    const { store, root, cleanup } = await makeFsStore();
    try {
      const key = nestedKey();
      await put(store, key, Buffer.from('on disk'));
      assert.equal((await stat(path.join(root, ...key.split('/')))).size, 7);
      const aborted = await store.createWriter(nestedKey());
      await aborted.write(Buffer.from('gone'));
      assert.equal((await readdir(path.join(root, '.incoming'))).length, 1);
      await aborted.abort();
      assert.deepEqual(await readdir(path.join(root, '.incoming')), []);
    } finally {
      await cleanup();
    }
  });

  test('cleanupIncomplete honours olderThanMs using the leftover file time', async () => {
    const { store, root, cleanup } = await makeFsStore();
    try {
      await put(store, 'keep', Buffer.from('k')); // creates the folders
      const oldFile = path.join(root, '.incoming', 'old.tmp');
      const newFile = path.join(root, '.incoming', 'new.tmp');
      await writeFile(oldFile, 'old');
      await writeFile(newFile, 'new');
      const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
      await utimes(oldFile, twoHoursAgo, twoHoursAgo);
      assert.equal(await store.cleanupIncomplete(60 * 60 * 1000), 1);
      assert.deepEqual(await readdir(path.join(root, '.incoming')), ['new.tmp']);
      assert.deepEqual(await listAll(store), ['keep']);
    } finally {
      await cleanup();
    }
  });

  test('a key that is only a folder of other keys is not an object', async () => {
    const { store, cleanup } = await makeFsStore();
    try {
      await put(store, 'ab/cd/x.dcm', Buffer.from('x'));
      assert.equal(await store.stat('ab/cd'), null);
      await assert.rejects(store.read('ab/cd'), BlobNotFoundError);
      await store.delete('ab/cd');
      assert.deepEqual(await listAll(store), ['ab/cd/x.dcm']);
    } finally {
      await cleanup();
    }
  });

  test('a store over a folder that does not exist yet lists nothing and cleans nothing', async () => {
    const store = new FsBlobStore(path.join(os.tmpdir(), `atrium-missing-${randomUUID()}`));
    assert.deepEqual(await listAll(store), []);
    assert.equal(await store.cleanupIncomplete(), 0);
    assert.equal(await store.stat('nope'), null);
  });
});

