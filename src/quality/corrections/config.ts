import type { ConfigSection } from '../../config/config.ts';

export interface CorrectionSettings {
  /**
   * AE titles of DICOM peers (the exchange's peer registry, /api/dicom/peers) sent the corrected studies after
   * each correction and undo, by durable send jobs (docs/corrections.md, "Peers").
   */
  peers: string[];
}

/** The `corrections` section of atrium.json and ATRIUM_CORRECTIONS_PEERS (comma-separated AE titles). */
export const correctionsConfig: ConfigSection<CorrectionSettings> = {
  key: 'corrections',
  keys: ['peers'],
  environment: { ATRIUM_CORRECTIONS_PEERS: 'corrections.peers' },
  load(read, problems) {
    const peers = read.list('corrections.peers', []);
    for (const ae of peers) if (!/^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(ae) || ae.trim() === '') problems.push(`corrections.peers: "${ae}" is not an AE title (1-16 characters, no backslash)`);
    return { peers };
  },
};
