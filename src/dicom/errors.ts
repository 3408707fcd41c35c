import { keywordOf } from './dictionary.ts';
import { formatTag } from './tags.ts';

export type DicomParseErrorCode =
  /** The stream has neither a Part 10 header nor anything that looks like a DICOM data set. */
  | 'NOT_DICOM'
  /** File Meta Information without (0002,0010) Transfer Syntax UID (PS3.10 7.1). */
  | 'MISSING_TRANSFER_SYNTAX'
  /** An explicit VR that is not one of PS3.5 Table 6.2-1. */
  | 'INVALID_VR'
  /** The stream ended inside an element, item or sequence. */
  | 'TRUNCATED'
  /** A declared length so large that the stream cannot be a sane encoding of that element. */
  | 'ABSURD_LENGTH'
  /** A value or item runs past the end of the defined-length item or sequence containing it. */
  | 'LENGTH_OVERFLOW'
  /** Item / delimitation item found where PS3.5 7.5 does not allow one. */
  | 'DELIMITER_MISMATCH'
  /** The deflated data set (PS3.5 A.5) is not a valid deflate stream. */
  | 'DEFLATE_ERROR'
  /** Sequences nested deeper than the reader goes (dataset-parser.ts MAX_SEQUENCE_DEPTH). */
  | 'NESTING_TOO_DEEP'
  /** Encodings that are legal but not handled (e.g. Implicit VR Big Endian). */
  | 'UNSUPPORTED'
  /** push() after end(), or end() twice. */
  | 'ENDED';

export class DicomParseError extends Error {
  readonly code: DicomParseErrorCode;
  readonly offset: number;
  readonly tag?: number;

  constructor(code: DicomParseErrorCode, message: string, offset: number, tag?: number) {
    super(message);
    this.name = 'DicomParseError';
    this.code = code;
    this.offset = offset;
    if (tag !== undefined) this.tag = tag;
  }
}

/** "(7FE0,0010) PixelData", the way error messages name an element. */
export function describeTag(tag: number): string {
  const kw = keywordOf(tag);
  return kw ? `${formatTag(tag)} ${kw}` : formatTag(tag);
}
