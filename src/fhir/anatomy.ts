/**
 * DICOM Body Part Examined (0018,0015) and Laterality (0020,0060) as the SNOMED CT codings ImagingStudy
 * takes (PS3.16 Annex L, "Correspondence of Anatomic Region Codes and Body Part Examined Defined Terms").
 * A term not in this table keeps its text as the Coding's display.
 */
import type { Coding } from '@medplum/fhirtypes';
import { SNOMED } from './values.ts';

const BODY_PARTS: Readonly<Record<string, [string, string]>> = {
  ABDOMEN: ['113345001', 'Abdomen'],
  ANKLE: ['70258002', 'Ankle joint'],
  BRAIN: ['12738006', 'Brain'],
  BREAST: ['76752008', 'Breast'],
  CHEST: ['51185008', 'Thorax'],
  CSPINE: ['122494005', 'Cervical spine'],
  ELBOW: ['16953009', 'Elbow joint'],
  EXTREMITY: ['66019005', 'Limb'],
  FOOT: ['56459004', 'Foot'],
  HAND: ['85562004', 'Hand'],
  HEAD: ['69536005', 'Head'],
  HEART: ['80891009', 'Heart'],
  HIP: ['29836001', 'Hip'],
  KIDNEY: ['64033007', 'Kidney'],
  KNEE: ['72696002', 'Knee'],
  LIVER: ['10200004', 'Liver'],
  LSPINE: ['122496007', 'Lumbar spine'],
  NECK: ['45048000', 'Neck'],
  PELVIS: ['12921003', 'Pelvis'],
  SHOULDER: ['16982005', 'Shoulder'],
  SKULL: ['89546000', 'Skull'],
  SPINE: ['421060004', 'Spine'],
  TSPINE: ['122495006', 'Thoracic spine'],
  WRIST: ['74670003', 'Wrist joint'],
};

const LATERALITY: Readonly<Record<string, [string, string]>> = {
  R: ['24028007', 'Right'],
  L: ['7771000', 'Left'],
  B: ['51440002', 'Right and left'],
};

export function bodySiteCoding(term: string | null | undefined): Coding | null {
  const t = term?.trim().toUpperCase();
  if (!t) return null;
  const known = BODY_PARTS[t];
  return known ? { system: SNOMED, code: known[0], display: known[1] } : { display: term!.trim() };
}

export function lateralityCoding(value: string | null | undefined): Coding | null {
  const known = LATERALITY[value?.trim().toUpperCase() ?? ''];
  return known ? { system: SNOMED, code: known[0], display: known[1] } : null;
}
