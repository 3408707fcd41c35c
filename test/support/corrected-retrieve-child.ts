/**
 * The child process of src/quality/corrections/corrected-large.test.ts: opens an archive on ATRIUM_DATA, stores a
 * large synthetic instance (generated frame by frame), moves its study to another patient, then reads it back
 * as served (RetrieveService.openInstance and openDataset, what WADO-RS and C-MOVE/C-GET send), counting and
 * hashing the bytes without holding them. Prints one JSON line. Its peak RSS is measured by the parent.
 */
import { createHash } from 'node:crypto';
import { openArchive, MODULES } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { configSectionsOf } from '../../src/modules/module.ts';
import { syntheticInstance } from '../../src/synthetic/synthetic-instance.ts';
import { correctionsOf } from '../../src/quality/corrections/module.ts';
import { generateUid } from '../../src/dicom/uid.ts';

const frames = Number(process.env.FRAMES ?? 2048);
const archive = await openArchive(loadConfig({ sections: configSectionsOf(MODULES), env: { ATRIUM_DATA: process.env.ATRIUM_DATA!, ATRIUM_LOG_LEVEL: 'silent' } }));
try {
  const ids = { studyInstanceUid: generateUid(), seriesInstanceUid: generateUid(), sopInstanceUid: generateUid() };
  const other = generateUid();
  const big = await archive.ingest.ingest(syntheticInstance({ ...ids, patientId: 'OLD-ID', patientName: 'OLD^NAME', frames, rows: 512, columns: 512 }), { source: 'test' });
  const small = await archive.ingest.ingest(syntheticInstance({ studyInstanceUid: other, patientId: 'NEW-ID', patientName: 'NEW^NAME', rows: 8, columns: 8 }), { source: 'test' });
  if (big.status !== 'stored' || small.status !== 'stored') throw new Error(`not stored: ${big.status} ${small.status}`);
  const stored = (await archive.index.findInstance(ids.sopInstanceUid))!;
  const principal = { kind: 'user' as const, id: 'tester', displayName: 'tester', roles: ['administrator'] };
  await correctionsOf(archive).apply({ kind: 'move-study', studyInstanceUid: ids.studyInstanceUid, to: { patientId: 'NEW-ID' } }, 'bounded-memory test', { principal, interface: 'cli' });
  const read = async (bytes: AsyncIterable<unknown>) => {
    const hash = createHash('sha256');
    let size = 0;
    let head = Buffer.alloc(0);
    for await (const raw of bytes) {
      const chunk = raw as Uint8Array;
      hash.update(chunk);
      size += chunk.length;
      if (head.length < 8192) head = Buffer.concat([head, Buffer.from(chunk.subarray(0, 8192))]);
    }
    return { size, sha256: hash.digest('hex'), head: head.toString('latin1') };
  };
  const { bytes } = await archive.retrieve.openInstance(ids.sopInstanceUid);
  const instance = await read(bytes);
  const { dataset } = await archive.retrieve.openDataset(ids.sopInstanceUid);
  const sent = await read(dataset as AsyncIterable<unknown>);
  console.log(JSON.stringify({
    storedSize: stored.sizeBytes, storedSha256: stored.sha256, servedSize: instance.size, servedSha256: instance.sha256, datasetSize: sent.size,
    headHasNewId: instance.head.includes('NEW-ID'), headHasOldId: instance.head.includes('OLD-ID'), datasetHeadHasNewId: sent.head.includes('NEW-ID'),
  }));
} finally {
  await archive.close();
}
