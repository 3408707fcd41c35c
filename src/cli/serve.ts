import type { AtriumConfig } from '../config/config.ts';
import type { ModuleListener } from '../modules/module.ts';
import { eventDispatcher, jobRunner, openArchive } from '../app.ts';
import { createHttpServer } from '../http/server.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { DicomClient } from '../dimse/services/scu.ts';
import { outboundTls } from '../dimse/services/tls.ts';

export async function serveCommand(config: AtriumConfig): Promise<void> {
  const archive = await openArchive(config, { firstRunSetup: true });
  const client = new DicomClient(archive, { tls: outboundTls(config) });
  const runner = jobRunner(archive);
  const http = await createHttpServer(archive, { client, onJobQueued: () => runner.wake() });
  const dicom = await startDicomService(archive);
  // Modules' own listeners (the RIS's HL7 MLLP ports when enabled).
  const moduleListeners: ModuleListener[] = [];
  for (const module of archive.modules) moduleListeners.push(...(await module.listeners?.(archive) ?? []));
  runner.start();
  const events = eventDispatcher(archive);
  events.start();
  const address = await http.listen({ host: config.http.host, port: config.http.port });
  archive.log.info({ address, dicomPort: dicom.port, dicomTlsPort: dicom.tlsPort, aeTitle: config.dicom.aeTitle,
    listeners: Object.fromEntries(moduleListeners.map((l) => [l.name, l.port])), index: archive.index.kind, blobs: archive.blobs.kind, dataDir: config.dataDir },
    `Atrium is ready: ${address}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    archive.log.info({ signal }, 'stopping');
    // Reverse order of start: stop taking requests, let those under way finish, then close storage.
    await http.close();
    await runner.stop();
    await events.stop();
    for (const listener of moduleListeners.reverse()) await listener.close();
    await dicom.close();
    await archive.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
