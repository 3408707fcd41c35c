import type { ConfigSection } from '../../config/config.ts';

export interface CorrectionSettings {
  /**
   * AE titles of DICOM peers (the exchange's peer registry, /api/dicom/peers) sent the corrected studies after
   * each correction and undo, by durable send jobs (docs/corrections.md, "Peers").
   */
  peers: string[];
  /**
   * Those of `peers` that support IHE IOCM: they are also sent a Rejection Note (KOS "Rejected for Patient
   * Safety Reasons") for the instances replaced, first, by the same send job.
   */
  rejectionNotes: string[];
}

const AE_TITLE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;

/**
 * The `corrections` section of atrium.json, ATRIUM_CORRECTIONS_PEERS and ATRIUM_CORRECTIONS_REJECTION_NOTES
 * (comma-separated AE titles).
 */
export const correctionsConfig: ConfigSection<CorrectionSettings> = {
  key: 'corrections',
  keys: ['peers', 'rejectionNotes'],
  environment: { ATRIUM_CORRECTIONS_PEERS: 'corrections.peers', ATRIUM_CORRECTIONS_REJECTION_NOTES: 'corrections.rejectionNotes' },
  load(read, problems) {
    const peers = read.list('corrections.peers', []);
    for (const ae of peers) if (!AE_TITLE.test(ae) || ae.trim() === '') problems.push(`corrections.peers: "${ae}" is not an AE title (1-16 characters, no backslash)`);
    const rejectionNotes = read.list('corrections.rejectionNotes', []);
    for (const ae of rejectionNotes) if (!peers.includes(ae)) problems.push(`corrections.rejectionNotes: "${ae}" is not one of corrections.peers`);
    return { peers, rejectionNotes };
  },
};
