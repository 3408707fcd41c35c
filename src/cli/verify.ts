import type { AtriumConfig } from '../config/config.ts';
import { openArchive } from '../app.ts';
import { verifyArchive } from '../archive/verify.ts';

export async function verifyCommand(config: AtriumConfig, options: { repair: boolean; json: boolean }): Promise<number> {
  const archive = await openArchive({ ...config, log: { level: 'warn' } });
  try {
    let last = 0;
    const report = await verifyArchive(archive.index, archive.blobs, {
      repair: options.repair,
      onProgress: (checked, bytes) => {
        if (process.stderr.isTTY && Date.now() - last > 250) {
          last = Date.now();
          process.stderr.write(`\rverified ${checked} objects, ${(bytes / 1024 / 1024).toFixed(1)} MB`);
        }
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    if (options.json) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(`${report.checked} objects verified (${(report.bytes / 1024 / 1024).toFixed(1)} MB): ${report.problems.length} problems${options.repair ? `, ${report.removed} unreferenced blobs removed` : ''}`);
      for (const p of report.problems) console.log(`  ${p.kind} ${p.blobKey}${p.sopInstanceUid ? ` (${p.sopInstanceUid})` : ''}: ${p.detail}`);
    }
    const unrepaired = report.problems.filter((p) => !(options.repair && p.kind === 'unreferenced'));
    return unrepaired.length ? 1 : 0;
  } finally {
    await archive.close();
  }
}
