// Tags used by Atrium, named as PS3.6 names them. Values are (group << 16 | element) >>> 0.

export const FileMetaInformationGroupLength = 0x00020000;
export const FileMetaInformationVersion = 0x00020001;
export const MediaStorageSOPClassUID = 0x00020002;
export const MediaStorageSOPInstanceUID = 0x00020003;
export const TransferSyntaxUID = 0x00020010;
export const ImplementationClassUID = 0x00020012;
export const ImplementationVersionName = 0x00020013;
export const SourceApplicationEntityTitle = 0x00020016;

export const SpecificCharacterSet = 0x00080005;
export const ImageType = 0x00080008;
export const SOPClassUID = 0x00080016;
export const SOPInstanceUID = 0x00080018;
export const StudyDate = 0x00080020;
export const SeriesDate = 0x00080021;
export const AcquisitionDate = 0x00080022;
export const ContentDate = 0x00080023;
export const AcquisitionDateTime = 0x0008002a;
export const StudyTime = 0x00080030;
export const SeriesTime = 0x00080031;
export const AcquisitionTime = 0x00080032;
export const ContentTime = 0x00080033;
export const AccessionNumber = 0x00080050;
export const Modality = 0x00080060;
export const ModalitiesInStudy = 0x00080061;
export const Manufacturer = 0x00080070;
export const InstitutionName = 0x00080080;
export const ReferringPhysicianName = 0x00080090;
export const StationName = 0x00081010;
export const StudyDescription = 0x00081030;
export const SeriesDescription = 0x0008103e;
export const ManufacturerModelName = 0x00081090;
export const ReferencedSOPClassUID = 0x00081150;
export const ReferencedSOPInstanceUID = 0x00081155;

export const PatientName = 0x00100010;
export const PatientID = 0x00100020;
export const IssuerOfPatientID = 0x00100021;
export const PatientBirthDate = 0x00100030;
export const PatientSex = 0x00100040;
export const PatientAge = 0x00101010;
export const PatientSize = 0x00101020;
export const PatientWeight = 0x00101030;
export const TimezoneOffsetFromUTC = 0x00080201;
export const Laterality = 0x00200060;
export const ScheduledProcedureStepID = 0x00400009;
export const RequestedProcedureID = 0x00401001;
export const RequestAttributesSequence = 0x00400275;

export const BodyPartExamined = 0x00180015;

export const StudyInstanceUID = 0x0020000d;
export const SeriesInstanceUID = 0x0020000e;
export const StudyID = 0x00200010;
export const SeriesNumber = 0x00200011;
export const InstanceNumber = 0x00200013;

export const SamplesPerPixel = 0x00280002;
export const PhotometricInterpretation = 0x00280004;
export const NumberOfFrames = 0x00280008;
export const Rows = 0x00280010;
export const Columns = 0x00280011;
export const BitsAllocated = 0x00280100;
export const BitsStored = 0x00280101;
export const HighBit = 0x00280102;
export const PixelRepresentation = 0x00280103;

export const PerformedProcedureStepStartDate = 0x00400244;
export const PerformedProcedureStepStartTime = 0x00400245;

export const ExtendedOffsetTable = 0x7fe00001;
export const ExtendedOffsetTableLengths = 0x7fe00002;
export const FloatPixelData = 0x7fe00008;
export const DoubleFloatPixelData = 0x7fe00009;
export const PixelData = 0x7fe00010;

export const DataSetTrailingPadding = 0xfffcfffc;
export const Item = 0xfffee000;
export const ItemDelimitationItem = 0xfffee00d;
export const SequenceDelimitationItem = 0xfffee0dd;

/** Formats a tag as "(GGGG,EEEE)", the notation of PS3.5 7.1. */
export function formatTag(tag: number): string {
  const hex = (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

export function tagGroup(tag: number): number {
  return tag >>> 16;
}

export function tagElement(tag: number): number {
  return tag & 0xffff;
}

/** Private data elements live in odd groups (PS3.5 7.8.1); groups 0001-0007 and FFFF are excluded. */
export function isPrivateTag(tag: number): boolean {
  const g = tag >>> 16;
  return (g & 1) === 1 && g > 0x0007 && g !== 0xffff;
}

/** Private Creator Data Elements are (gggg,0010)-(gggg,00FF) in a private group (PS3.5 7.8.1). */
export function isPrivateCreator(tag: number): boolean {
  const e = tag & 0xffff;
  return isPrivateTag(tag) && e >= 0x0010 && e <= 0x00ff;
}
