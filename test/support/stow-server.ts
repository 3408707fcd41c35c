/**
 * A minimal STOW-RS server for tests that need it in a child process (peak-memory measurements): the archive
 * opened from the ATRIUM_* environment as `atrium serve` does, and only the STOW-RS routes. Prints
 * `STOW ready: <url>` on stdout, stops on SIGTERM.
 */
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { openArchive, MODULES } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { sendProblem } from '../../src/http/problem.ts';
import { stowRoutes } from '../../src/dicomweb/stow.ts';
import { configSectionsOf } from '../../src/modules/module.ts';

const config = loadConfig({ sections: configSectionsOf(MODULES),  env: process.env });
const archive = await openArchive(config);
const app = Fastify({ loggerInstance: archive.log.child({ transport: 'http' }) as FastifyBaseLogger, bodyLimit: 1024 * 1024 });
app.setErrorHandler((error, request, reply) => sendProblem(error as Error, request, reply));
await stowRoutes(app, archive);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`STOW ready: ${address}\n`);
process.on('SIGTERM', async () => {
  await app.close();
  await archive.close();
  process.exit(0);
});
