/**
 * The transfer syntax an instance is retrieved in (WADO-RS studies, series and instances; WADO-URI's
 * transferSyntax), and its bytes: the stored object as it is whenever the client takes it (byte-exact, no
 * work), else a transcoding (src/imaging/transcode.ts). Implicit VR Little Endian is produced only when named:
 * PS3.18 8.7.3 keeps it out of web services, but some clients still ask for it.
 */
import type { BodySource } from './multipart-writer.ts';
import type { InstanceRecord } from '../ports/index-store.ts';
import type { ServedCorrection } from '../ports/served-corrections.ts';
import { instanceTranscodeRefusal, transcodeInstance } from '../imaging/index.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, isLossy } from './accept.ts';
import type { DicomwebContext } from './context.ts';

/** What one instance is sent as. `asked` is the index of the request's choice it satisfies. */
export interface Delivery {
  transferSyntaxUid: string;
  transcode: boolean;
  asked: number;
  /**
   * The identity correction served with it (docs/corrections.md): the bytes then differ from the stored ones,
   * so the length is not the stored size and the entity tag names the correction.
   */
  correction?: ServedCorrection | null;
}

export const storedSyntaxOf = (rec: InstanceRecord) => rec.transferSyntaxUid.replace(/[\0 ]+$/, '');

/**
 * Chooses among the transfer syntaxes a request accepts, most preferred first: '*' (any), a UID, or undefined
 * (the media type named none, whose default is Explicit VR Little Endian, PS3.18 8.7.3). The stored syntax
 * wins whenever it is acceptable, whatever its rank: it is sent byte-exact and costs nothing. The default also
 * takes the stored object when it is lossy, or too long for Explicit VR Little Endian (both exceptions of
 * PS3.18 8.7.3), or cannot be transcoded here (JPEG XL, MPEG...). Else the first syntax this server produces.
 * Returns the reasons when none can be had.
 */
export async function chooseTransferSyntax(ctx: DicomwebContext, rec: InstanceRecord, asked: (string | undefined)[]): Promise<Delivery | { refusal: string }> {
  const stored = storedSyntaxOf(rec);
  const storedAt = asked.findIndex((ts) => ts === '*' || ts === stored || (ts === undefined && (stored === EXPLICIT_VR_LITTLE_ENDIAN || isLossy(stored))));
  const correction = await ctx.archive.retrieve.correctionOf(rec);
  if (storedAt >= 0) return { transferSyntaxUid: stored, transcode: false, asked: storedAt, correction };
  const reasons: string[] = [];
  for (let i = 0; i < asked.length; i++) {
    const to = asked[i] ?? EXPLICIT_VR_LITTLE_ENDIAN;
    const refusal = await instanceTranscodeRefusal(ctx.archive, rec, to);
    if (refusal === undefined) return { transferSyntaxUid: to, transcode: true, asked: i, correction };
    if (asked[i] === undefined) return { transferSyntaxUid: stored, transcode: false, asked: i, correction };
    reasons.push(`${to}: ${refusal}`);
  }
  return { refusal: [...new Set(reasons)].join('; ') };
}

/** The bytes of the instance as chosen; transcoding failures that show before the first byte reject here. */
export async function instanceBytes(ctx: DicomwebContext, rec: InstanceRecord, delivery: Delivery): Promise<BodySource> {
  if (delivery.transcode) {
    const transcoded = await transcodeInstance(ctx.archive, rec, delivery.transferSyntaxUid);
    return delivery.correction ? await ctx.archive.retrieve.applyCorrection(rec, transcoded, delivery.correction) : transcoded;
  }
  return await ctx.archive.retrieve.openInstanceBytes(rec);
}

/** The length of the instance's bytes as chosen, when known before sending: the stored size, unless transcoded or corrected. */
export function instanceLength(rec: InstanceRecord, delivery: Delivery): number | undefined {
  return delivery.transcode || delivery.correction ? undefined : rec.sizeBytes;
}

/** The entity tag of the instance's bytes as chosen: the stored hash, or a weak tag for a transcoding of them. */
export function instanceEtag(rec: InstanceRecord, delivery: Delivery): string {
  const corrected = delivery.correction ? `.c${delivery.correction.correctionId}` : '';
  return delivery.transcode ? `W/"${rec.sha256}.${delivery.transferSyntaxUid}${corrected}"` : `"${rec.sha256}${corrected}"`;
}
