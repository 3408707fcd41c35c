import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { AtriumConfig } from '../../config/config.ts';

/**
 * TLS for associations Atrium opens (C-MOVE destinations, sends, retrieves) to peers marked `tls`: our
 * certificate for mutual authentication and the configured CA to verify theirs; TLS 1.2 or later (BCP 195).
 */
export function outboundTls(config: AtriumConfig): ConnectionOptions | undefined {
  const tls = config.dicom.tls;
  if (!tls) return undefined;
  return {
    cert: readFileSync(tls.cert), key: readFileSync(tls.key), ...(tls.ca ? { ca: readFileSync(tls.ca) } : {}), minVersion: 'TLSv1.2',
  };
}
