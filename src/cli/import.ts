import cliProgress from 'cli-progress';
import type { AtriumConfig } from '../config/config.ts';
import { openArchive } from '../app.ts';
import { importPaths } from '../archive/import/folder-import.ts';

export async function importCommand(config: AtriumConfig, paths: string[], options: { concurrency: number; json: boolean; progress: boolean; verbose: boolean }): Promise<number> {
  // The CLI speaks to people on stdout/stderr; the log only carries warnings (quarantine reasons etc.).
  const archive = await openArchive({ ...config, log: { level: config.log.level === 'info' ? 'warn' : config.log.level } });
  // A progress bar redraws its line; per-file lines (--verbose) and it would garble each other.
  const bar = options.progress && !options.verbose && process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: 'importing [{bar}] {value}/{total} files | {stored} stored, {duplicates} duplicate, {quarantined} quarantined | {eta_formatted} left', stream: process.stderr }, cliProgress.Presets.shades_classic)
    : null;
  const counts = { stored: 0, duplicates: 0, quarantined: 0 };
  try {
    const summary = await importPaths(archive.ingest, paths, {
      concurrency: options.concurrency,
      recordOutcomes: options.json,
      onDiscovered: (n) => bar?.start(n, 0, counts),
      onFileDone: (file, result) => {
        // Printed only once the outcome is durable: a "stored" line is a promise the archive keeps.
        if (options.verbose) {
          const line = result instanceof Error ? `failed ${file}: ${result.message}`
            : result.status === 'stored' || result.status === 'duplicate' ? `${result.status} ${file} ${result.sopInstanceUid}`
            : `${result.status} ${file}: ${result.reasonCode}`;
          process.stdout.write(`${line}\n`);
        }
        if (!(result instanceof Error)) {
          if (result.status === 'stored') counts.stored++;
          else if (result.status === 'duplicate') counts.duplicates++;
          else if (result.status === 'quarantined') counts.quarantined++;
        }
        bar?.increment(1, counts);
      },
    });
    bar?.stop();
    if (options.json) {
      console.log(JSON.stringify(summary, null, 2));
    } else {
      const mb = (summary.bytes / 1024 / 1024).toFixed(1);
      console.log(`${summary.files} files: ${summary.stored} stored (${mb} MB), ${summary.duplicates} duplicates, ${summary.quarantined.length} quarantined, ${summary.skipped.length} not DICOM, ${summary.failed.length} failed`);
      if (summary.generatedFileMeta) console.log(`${summary.generatedFileMeta} bare data sets (no File Meta) stored with a generated File Meta`);
      if (summary.dicomdirs) console.log(`${summary.dicomdirs} DICOMDIR read${summary.missingFromDicomdir.length ? `, ${summary.missingFromDicomdir.length} referenced files missing` : ''}`);
      for (const q of summary.quarantined) console.log(`  quarantined ${q.file}: ${q.reasonCode}: ${q.reason}`);
      for (const r of summary.rejected) console.log(`  rejected ${r.file}: ${r.reasonCode}: ${r.reason}`);
      for (const f of summary.skipped) console.log(`  skipped ${f.file}: not DICOM`);
      for (const f of summary.failed) console.log(`  failed ${f.file}: ${f.error}`);
      for (const m of summary.missingFromDicomdir) console.log(`  missing ${m} (referenced by a DICOMDIR)`);
    }
    return summary.failed.length || summary.quarantined.length || summary.rejected.length || summary.missingFromDicomdir.length ? 1 : 0;
  } finally {
    bar?.stop();
    await archive.close();
  }
}
