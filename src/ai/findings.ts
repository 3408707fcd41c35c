/**
 * What an AI result says (docs/ai.md "Triage"): the study it is about and the coded findings of an SR's
 * content tree (given as the DICOM JSON model of our own parse, src/dicom/dicom-json.ts), mapped to triage
 * flags. Pure; no I/O.
 *
 * A finding is read from CODE content items in the two ways AI SRs write it (TID 1500 and the vendors' own):
 * - the finding as the value: concept "Finding" (121071, DCM) or any other, value the finding code; present
 *   unless one of its children codes Absent or No;
 * - the finding as the concept: concept the finding code, value Present / Yes (present) or Absent / No (absent);
 *   another value (a grade, a location) also means present.
 */
import type { DicomJsonAttribute, DicomJsonDataSet } from '../dicom/dicom-json.ts';
import type { FindingMapping } from './node.ts';

export interface Code { code: string; scheme: string; meaning: string }

export interface ReadFinding extends Code {
  present: boolean;
  /** The mapped triage flag, null when no mapping names the code. */
  flag: string | null;
}

export interface ResultContent {
  studyInstanceUid: string | null;
  /** Studies the SR says it is about (Current Requested Procedure Evidence, Referenced Request, Pertinent Other Evidence). */
  referencedStudies: string[];
  manufacturer: string | null;
  model: string | null;
  /** Every finding read from CODE items, mapped or not. */
  findings: ReadFinding[];
}

/** SOP classes an AI node answers with (PS3.4 B.5): SR, SEG, Secondary Capture, Presentation State. */
export const RESULT_SOP_CLASSES: Readonly<Record<string, 'sr' | 'seg' | 'sc' | 'pr'>> = {
  '1.2.840.10008.5.1.4.1.1.88.11': 'sr', // Basic Text SR
  '1.2.840.10008.5.1.4.1.1.88.22': 'sr', // Enhanced SR
  '1.2.840.10008.5.1.4.1.1.88.33': 'sr', // Comprehensive SR
  '1.2.840.10008.5.1.4.1.1.88.34': 'sr', // Comprehensive 3D SR
  '1.2.840.10008.5.1.4.1.1.88.35': 'sr', // Extensible SR
  '1.2.840.10008.5.1.4.1.1.66.4': 'seg', // Segmentation
  '1.2.840.10008.5.1.4.1.1.7': 'sc', // Secondary Capture
  '1.2.840.10008.5.1.4.1.1.7.1': 'sc',
  '1.2.840.10008.5.1.4.1.1.7.2': 'sc',
  '1.2.840.10008.5.1.4.1.1.7.3': 'sc',
  '1.2.840.10008.5.1.4.1.1.7.4': 'sc',
  '1.2.840.10008.5.1.4.1.1.11.1': 'pr', // Grayscale Softcopy Presentation State
  '1.2.840.10008.5.1.4.1.1.11.2': 'pr', // Color
  '1.2.840.10008.5.1.4.1.1.11.3': 'pr', // Pseudo-Color
  '1.2.840.10008.5.1.4.1.1.11.4': 'pr', // Blending
};

export function resultKindOf(sopClassUid: string): 'sr' | 'seg' | 'sc' | 'pr' | 'other' {
  return RESULT_SOP_CLASSES[sopClassUid] ?? 'other';
}

const T = {
  Manufacturer: '00080070', ManufacturerModelName: '00081090', StudyInstanceUID: '0020000D',
  CodeValue: '00080100', CodingSchemeDesignator: '00080102', CodeMeaning: '00080104', LongCodeValue: '00080119',
  ValueType: '0040A040', ConceptNameCodeSequence: '0040A043', ConceptCodeSequence: '0040A168', ContentSequence: '0040A730',
  ReferencedRequestSequence: '0040A370', CurrentRequestedProcedureEvidenceSequence: '0040A375', PertinentOtherEvidenceSequence: '0040A385',
} as const;

/** SNOMED CT Present / Yes, Absent / No (CID 230 Yes-No, CID 240 Normal-Abnormal's neighbours). */
const PRESENT = new Set(['52101004^SCT', '373066001^SCT', 'R-0038D^SRT', 'R-40775^SRT']);
const ABSENT = new Set(['2667000^SCT', '373067005^SCT', 'R-00339^SRT', 'R-40777^SRT']);

function str(ds: DicomJsonDataSet, tag: string): string | null {
  const v = (ds[tag] as DicomJsonAttribute | undefined)?.Value?.[0];
  if (v === undefined || v === null || typeof v === 'object') return null;
  const s = String(v).trim();
  return s === '' ? null : s;
}
function items(ds: DicomJsonDataSet, tag: string): DicomJsonDataSet[] {
  return (((ds[tag] as DicomJsonAttribute | undefined)?.Value ?? []) as unknown[]).filter((v): v is DicomJsonDataSet => !!v && typeof v === 'object');
}
function coded(item: DicomJsonDataSet | undefined): Code | null {
  if (!item) return null;
  const code = str(item, T.CodeValue) ?? str(item, T.LongCodeValue);
  return code === null ? null : { code, scheme: str(item, T.CodingSchemeDesignator) ?? '', meaning: str(item, T.CodeMeaning) ?? '' };
}
const keyOf = (c: { code: string; scheme: string }) => `${c.code}^${c.scheme.toUpperCase()}`;

/** The study, device and findings of an AI result; `mappings` are tried in order (the node's first, then the configured ones). */
export function readResult(ds: DicomJsonDataSet, mappings: readonly FindingMapping[]): ResultContent {
  const flags = new Map<string, string>();
  for (const m of mappings) if (!flags.has(keyOf(m))) flags.set(keyOf(m), m.flag);
  const referenced = new Set<string>();
  for (const tag of [T.CurrentRequestedProcedureEvidenceSequence, T.ReferencedRequestSequence, T.PertinentOtherEvidenceSequence]) {
    for (const item of items(ds, tag)) {
      const uid = str(item, T.StudyInstanceUID);
      if (uid) referenced.add(uid);
    }
  }
  const findings: ReadFinding[] = [];
  const walk = (node: DicomJsonDataSet, depth: number) => {
    for (const child of items(node, T.ContentSequence)) {
      if (str(child, T.ValueType) === 'CODE') {
        const concept = coded(items(child, T.ConceptNameCodeSequence)[0]);
        const value = coded(items(child, T.ConceptCodeSequence)[0]);
        if (concept && value && flags.has(keyOf(concept))) {
          findings.push({ ...concept, present: !ABSENT.has(keyOf(value)), flag: flags.get(keyOf(concept))! });
        } else if (value && !PRESENT.has(keyOf(value)) && !ABSENT.has(keyOf(value))) {
          const negated = items(child, T.ContentSequence).some((c) => {
            const v = coded(items(c, T.ConceptCodeSequence)[0]);
            return str(c, T.ValueType) === 'CODE' && v !== null && ABSENT.has(keyOf(v));
          });
          findings.push({ ...value, present: !negated, flag: flags.get(keyOf(value)) ?? null });
        }
        // (An unmapped concept with Present/Absent is a modifier, such as Presence under a finding: not a finding itself.)
      }
      // PS3.3 C.17.3: content trees are shallow; the codec already refuses nesting past 128 sequences.
      if (depth < 64) walk(child, depth + 1);
    }
  };
  walk(ds, 0);
  return {
    studyInstanceUid: str(ds, T.StudyInstanceUID), referencedStudies: [...referenced], manufacturer: str(ds, T.Manufacturer), model: str(ds, T.ManufacturerModelName), findings,
  };
}

/** The flags of the mapped findings present, in the order read, each once. */
export function flagsOf(findings: readonly ReadFinding[]): string[] {
  return [...new Set(findings.filter((f) => f.present && f.flag).map((f) => f.flag!))];
}
