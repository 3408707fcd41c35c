import type { InstanceRecord } from './index-store.ts';

/** One attribute as it is served for a corrected study or series. */
export interface ServedAttribute {
  /** 8 hex digits. */
  tag: string;
  keyword: string;
  vr: string;
  value: string;
}

/** What is served in place of the stored values of one instance, and since which correction. */
export interface ServedCorrection {
  attributes: ServedAttribute[];
  /** The latest correction behind it: served objects' entity tags change with it. */
  correctionId: number;
  correctedAt: string;
}

/**
 * The corrected values of the studies and series identity corrections touched (table served_correction,
 * written by src/quality/corrections/), read by the one read path (src/archive/retrieve.ts).
 */
export interface ServedCorrections {
  /** null when nothing of the instance's study or series was corrected. */
  correctionOf(instance: Pick<InstanceRecord, 'studyInstanceUid' | 'seriesInstanceUid'>): Promise<ServedCorrection | null>;
}
