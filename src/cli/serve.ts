import type { AtriumConfig } from '../config/config.ts';
import { openArchive } from '../app.ts';
import { createHttpServer } from '../http/server.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';

export async function serveCommand(config: AtriumConfig): Promise<void> {
  const archive = await openArchive(config);
  const http = await createHttpServer(archive);
  const dicom = await startDicomService(archive);
  const address = await http.listen({ host: config.http.host, port: config.http.port });
  archive.log.info({ address, dicomPort: dicom.port, dicomTlsPort: dicom.tlsPort, aeTitle: config.dicom.aeTitle, index: archive.index.kind, blobs: archive.blobs.kind, dataDir: config.dataDir },
    `Atrium is ready: ${address}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    archive.log.info({ signal }, 'stopping');
    // Reverse order of start: stop taking requests, let those under way finish, then close storage.
    await dicom.close();
    await http.close();
    await archive.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
