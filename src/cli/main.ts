import { Command, Option } from 'commander';
import { loadConfig, ConfigError, type AtriumConfig } from '../config/config.ts';
import { redactedConfig } from '../config/redaction.ts';
import { serveCommand } from './serve.ts';
import { MODULES } from '../app.ts';
import { configSectionsOf } from '../modules/module.ts';
import { importCommand } from './import.ts';
import { verifyCommand } from './verify.ts';
import { echoCommand, jobCommand, queryCommand } from './dicom.ts';
import { RETRIEVE_JOB, SEND_JOB } from '../exchange/dicom-jobs.ts';
import type { QueryLevelName } from '../dimse/services/scu.ts';
import { apiKeyAddCommand, certsCommand, userAddCommand } from './security.ts';

/** `-k Keyword=value` options, as DCMTK's findscu takes them. */
function collectKey(value: string, keys: Record<string, string>): Record<string, string> {
  const i = value.indexOf('=');
  keys[i < 0 ? value : value.slice(0, i)] = i < 0 ? '' : value.slice(i + 1);
  return keys;
}

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
  return loadConfig({ dataDir: options.data, file: options.config, sections: configSectionsOf(MODULES) });
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

withConfig(program.command('echo').description('C-ECHO a known DICOM peer'))
  .argument('<ae>', 'AE title of the peer')
  .action(async (ae: string, options) => { process.exitCode = await echoCommand(config(options), ae); });

withConfig(program.command('query').description('C-FIND on a known DICOM peer'))
  .argument('<ae>', 'AE title of the peer')
  .option('-l, --level <level>', 'PATIENT, STUDY, SERIES or IMAGE', 'STUDY')
  .option('-k, --key <key=value>', 'matching or return key, repeatable (e.g. -k PatientName=DOE* -k StudyDate)', collectKey, {})
  .option('--json', 'print DICOM JSON')
  .action(async (ae: string, options) => {
    process.exitCode = await queryCommand(config(options), ae, String(options.level).toUpperCase() as QueryLevelName, options.key, !!options.json);
  });

withConfig(program.command('send').description('send a study, series or instances to a known DICOM peer (a durable job)'))
  .argument('<ae>', 'AE title of the destination')
  .option('--study <uid>', 'Study Instance UID')
  .option('--series <uid>', 'Series Instance UID')
  .option('--instance <uid...>', 'SOP Instance UIDs')
  .action(async (ae: string, options) => {
    process.exitCode = await jobCommand(config(options), SEND_JOB, {
      destination: ae, studyInstanceUid: options.study, seriesInstanceUid: options.series, sopInstanceUids: options.instance,
    });
  });

withConfig(program.command('retrieve').description('retrieve from a known DICOM peer into Atrium by C-MOVE or C-GET (a durable job)'))
  .argument('<ae>', 'AE title of the source')
  .option('-l, --level <level>', 'PATIENT, STUDY, SERIES or IMAGE', 'STUDY')
  .option('-k, --key <key=value>', 'unique keys, repeatable (e.g. -k StudyInstanceUID=1.2.3)', collectKey, {})
  .option('--get', 'C-GET on the same association instead of C-MOVE to ourselves')
  .action(async (ae: string, options) => {
    process.exitCode = await jobCommand(config(options), RETRIEVE_JOB, {
      source: ae, level: String(options.level).toUpperCase() as QueryLevelName, keys: options.key, method: options.get ? 'get' : 'move',
    });
  });

const collect = (value: string, list: string[]) => [...list, value];

program.command('certs').description('write a self-signed certificate set (CA, server, client) for testing HTTPS and DICOM TLS')
  .argument('<dir>', 'folder to write ca.pem, server.pem, client.pem and their keys into')
  .option('--host <name>', 'DNS name or IP address of the server certificate, repeatable (default localhost and 127.0.0.1)', collect, [])
  .option('--client-name <cn>', 'common name of the client certificate (e.g. the peer\'s AE title)', 'ATRIUM-CLIENT')
  .option('--days <n>', 'validity in days', '365')
  .action(async (dir: string, options) => {
    process.exitCode = await certsCommand(dir, { hosts: options.host, clientName: options.clientName, days: Number(options.days) });
  });

const user = program.command('user').description('local user accounts');
withConfig(user.command('add').description('create a user; prints a generated password unless --password-stdin'))
  .argument('<username>')
  .option('-r, --role <role>', 'role, repeatable: administrator, radiologist, technologist, referring-clinician, researcher, integration', collect, [])
  .option('--display-name <name>')
  .option('--password-stdin', 'read the password from the first line of standard input')
  .action(async (username: string, options) => {
    process.exitCode = await userAddCommand(config(options), username, { role: options.role, displayName: options.displayName, passwordStdin: !!options.passwordStdin });
  });

const apiKey = program.command('api-key').description('API keys for machines (scoped, expiring, revocable)');
withConfig(apiKey.command('add').description('create an API key; the key is printed once'))
  .argument('<name>', 'what the key is for, e.g. "AI node 1"')
  .option('-r, --role <role>', 'role, repeatable', collect, [])
  .option('--route <prefix>', 'limit the key to routes under this path prefix, repeatable (e.g. /dicom-web/)', collect, [])
  .option('--expires-days <n>', 'days until it expires; 0: never (default 365)')
  .action(async (name: string, options) => {
    process.exitCode = await apiKeyAddCommand(config(options), name, {
      role: options.role, route: options.route.length ? options.route : undefined,
      expiresDays: options.expiresDays === undefined ? undefined : Number(options.expiresDays),
    });
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
