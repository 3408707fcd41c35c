/**
 * Parses a stored SR with the codec (Part10Reader, then the DICOM JSON model) and extracts its dose report.
 * Dose SRs are small (tens of kB); values over the bulk threshold (an SR has none that matter) are left out.
 */
import { Part10Reader } from '../../dicom/part10-reader.ts';
import { toDicomJson } from '../../dicom/dicom-json.ts';
import { extractDose, type DoseExtraction } from './dose-extraction.ts';

export async function readDoseReport(bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<DoseExtraction> {
  const reader = new Part10Reader({ bulkThreshold: 1 << 20 });
  for await (const chunk of bytes) reader.push(chunk);
  const { dataset } = reader.end();
  return extractDose(toDicomJson(dataset));
}
