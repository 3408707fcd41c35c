import { Command, Option } from 'commander';
import { loadConfig, redactedConfig, ConfigError, type AtriumConfig } from '../config/config.ts';
import { serveCommand } from './serve.ts';
import { importCommand } from './import.ts';
import { verifyCommand } from './verify.ts';

/** `atrium <verb>`: every verb takes --data and --config and reads one validated configuration. */
const program = new Command('atrium')
  .description('Atrium: open-source enterprise imaging archive (VNA / PACS core)')
  .showHelpAfterError();

function withConfig(command: Command): Command {
  return command
    .option('--data <dir>', 'data folder (index, blobs, atrium.json)', undefined)
    .option('--config <file>', 'JSON configuration file (default <data>/atrium.json when present)');
}

function config(options: { data?: string; config?: string }): AtriumConfig {
  return loadConfig({ dataDir: options.data, file: options.config });
}

withConfig(program.command('serve').description('start Atrium: admin REST, UI and metrics over HTTP'))
  .action(async (options) => await serveCommand(config(options)));

withConfig(program.command('import').description('import DICOM files and folders (recursive, DICOMDIR-aware)'))
  .argument('<paths...>', 'files or folders')
  .option('-j, --concurrency <n>', 'files imported at once (default: ingest.importConcurrency)')
  .option('--json', 'print the summary as JSON on stdout')
  .option('-v, --verbose', 'print one line per file as soon as its outcome is known')
  .option('--no-progress', 'no progress bar')
  .action(async (paths: string[], options) => {
    const cfg = config(options);
    const concurrency = options.concurrency ? Number(options.concurrency) : cfg.ingest.importConcurrency;
    process.exitCode = await importCommand(cfg, paths, { concurrency, json: !!options.json, progress: options.progress, verbose: !!options.verbose });
  });

withConfig(program.command('verify').description('re-read every stored object and check its size and SHA-256'))
  .option('--repair', 'remove blobs that no index entry points at (older than an hour)')
  .option('--json', 'print the report as JSON on stdout')
  .action(async (options) => {
    process.exitCode = await verifyCommand(config(options), { repair: !!options.repair, json: !!options.json });
  });

withConfig(program.command('config').description('print the effective configuration (secrets masked)'))
  .addOption(new Option('--check', 'only validate'))
  .action((options) => {
    const cfg = config(options);
    if (!options.check) console.log(JSON.stringify(redactedConfig(cfg), null, 2));
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`atrium: ${error.message}`);
    process.exitCode = 78; // EX_CONFIG
  } else {
    console.error(`atrium: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  }
}
