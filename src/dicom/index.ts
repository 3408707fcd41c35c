// Public API of Atrium's DICOM codec.
export * as tags from './tags.ts';
export * as transferSyntaxes from './transfer-syntax.ts';
export { transferSyntaxInfo } from './transfer-syntax.ts';
export type { TransferSyntaxInfo } from './transfer-syntax.ts';
export { lookupTag, vrOf, keywordOf, tagOfKeyword } from './dictionary.ts';
export type { DictionaryEntry } from './dictionary.ts';
export {
  UNDEFINED_LENGTH, findElement, characterSetOf, elementStrings, elementNumbers, stringValue, stringValues,
  numberValue, numberValues,
} from './dataset.ts';
export type { DataElement, DataSet, Fragment } from './dataset.ts';
export { decodeText, parseSpecificCharacterSet, splitPersonName, splitValues, trimValue } from './charset.ts';
export type { PersonNameGroups } from './charset.ts';
export { Part10Reader, DicomParseError } from './part10-reader.ts';
export type { Part10Header, Part10ReaderOptions, DicomParseErrorCode } from './part10-reader.ts';
export {
  encodeFileMeta, encodeElement, encodeDataset, encodeElementHeader, encodeItemHeader, encodeSequenceDelimiter,
  DicomEncodeError,
} from './part10-writer.ts';
export type { FileMetaOptions, EncodeOptions } from './part10-writer.ts';
export { toDicomJson, fromDicomJson } from './dicom-json.ts';
export type { DicomJsonDataSet, DicomJsonAttribute, DicomJsonValue, ToDicomJsonOptions, FromDicomJsonOptions } from './dicom-json.ts';
export { ATRIUM_UID_ROOT, ATRIUM_IMPLEMENTATION_CLASS_UID, ATRIUM_IMPLEMENTATION_VERSION_NAME, generateUid, isValidUid } from './uid.ts';
