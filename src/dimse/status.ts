// DIMSE status codes (PS3.7 Annex C, and the service-specific codes of PS3.4 for C-STORE, C-FIND, C-MOVE, C-GET).
// Some codes mean different things in different services (0xB000, 0xA900); the names below are aliases.

export const Status = {
  Success: 0x0000,
  /** Pending: matches/sub-operations are continuing. */
  Pending: 0xff00,
  /** Pending: matches are continuing, warning that one or more Optional Keys were not supported. */
  PendingWarning: 0xff01,
  Cancel: 0xfe00,

  // C-STORE (PS3.4 Table B.2-1)
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSOPClass: 0xa900,
  CannotUnderstand: 0xc000,
  CoercionOfDataElements: 0xb000,
  ElementsDiscarded: 0xb006,
  DataSetDoesNotMatchSOPClassWarning: 0xb007,

  // C-FIND / C-MOVE / C-GET (PS3.4 C.4)
  IdentifierDoesNotMatchSOPClass: 0xa900,
  UnableToProcess: 0xc001,
  OutOfResourcesUnableToCalculateNumberOfMatches: 0xa701,
  OutOfResourcesUnableToPerformSubOperations: 0xa702,
  MoveDestinationUnknown: 0xa801,
  SubOperationsCompleteWithFailures: 0xb000,

  // General (PS3.7 Annex C)
  AttributeListError: 0x0107,
  AttributeValueOutOfRange: 0x0116,
  ProcessingFailure: 0x0110,
  DuplicateSOPInstance: 0x0111,
  NoSuchSOPInstance: 0x0112,
  NoSuchEventType: 0x0113,
  NoSuchArgument: 0x0114,
  InvalidArgumentValue: 0x0115,
  InvalidObjectInstance: 0x0117,
  NoSuchSOPClass: 0x0118,
  ClassInstanceConflict: 0x0119,
  NoSuchAttribute: 0x0105,
  InvalidAttributeValue: 0x0106,
  MissingAttribute: 0x0120,
  MissingAttributeValue: 0x0121,
  SOPClassNotSupported: 0x0122,
  NoSuchActionType: 0x0123,
  NotAuthorized: 0x0124,
  DuplicateInvocation: 0x0210,
  UnrecognizedOperation: 0x0211,
  MistypedArgument: 0x0212,
  ResourceLimitation: 0x0213,
} as const;

export type StatusCategory = 'success' | 'pending' | 'cancel' | 'warning' | 'failure';

export function statusCategory(code: number): StatusCategory {
  if (code === 0x0000) return 'success';
  if (code === 0xff00 || code === 0xff01) return 'pending';
  if (code === 0xfe00) return 'cancel';
  if (code === 0x0001 || code === 0x0107 || code === 0x0116 || (code & 0xf000) === 0xb000) return 'warning';
  return 'failure';
}

const NAMES: Record<number, string> = {
  0x0000: 'Success',
  0xff00: 'Pending',
  0xff01: 'Pending: Optional Keys not supported',
  0xfe00: 'Cancel',
  0xa700: 'Refused: Out of Resources',
  0xa701: 'Refused: Out of Resources - Unable to calculate number of matches',
  0xa702: 'Refused: Out of Resources - Unable to perform sub-operations',
  0xa801: 'Refused: Move Destination unknown',
  0xa900: 'Error: Data Set does not match SOP Class',
  0xc000: 'Error: Cannot understand',
  0xc001: 'Failed: Unable to process',
  0xb000: 'Warning: Coercion of Data Elements / Sub-operations complete with failures',
  0xb006: 'Warning: Elements Discarded',
  0xb007: 'Warning: Data Set does not match SOP Class',
  0x0105: 'Failure: No such attribute',
  0x0106: 'Failure: Invalid attribute value',
  0x0107: 'Warning: Attribute list error',
  0x0110: 'Failure: Processing failure',
  0x0111: 'Failure: Duplicate SOP Instance',
  0x0112: 'Failure: No such SOP Instance',
  0x0113: 'Failure: No such event type',
  0x0114: 'Failure: No such argument',
  0x0115: 'Failure: Invalid argument value',
  0x0116: 'Warning: Attribute value out of range',
  0x0117: 'Failure: Invalid object instance',
  0x0118: 'Failure: No such SOP Class',
  0x0119: 'Failure: Class-instance conflict',
  0x0120: 'Failure: Missing attribute',
  0x0121: 'Failure: Missing attribute value',
  0x0122: 'Refused: SOP Class not supported',
  0x0123: 'Failure: No such action type',
  0x0124: 'Refused: Not authorized',
  0x0210: 'Failure: Duplicate invocation',
  0x0211: 'Failure: Unrecognized operation',
  0x0212: 'Failure: Mistyped argument',
  0x0213: 'Failure: Resource limitation',
};

/** "0xA700 Refused: Out of Resources". */
export function describeStatus(code: number): string {
  const hex = `0x${code.toString(16).toUpperCase().padStart(4, '0')}`;
  let name = NAMES[code];
  if (!name) {
    if ((code & 0xff00) === 0xa700) name = 'Refused: Out of Resources';
    else if ((code & 0xff00) === 0xa900) name = 'Error: Data Set does not match SOP Class';
    else if ((code & 0xf000) === 0xc000) name = 'Error: Cannot understand';
    else if ((code & 0xf000) === 0xb000) name = 'Warning';
    else name = statusCategory(code) === 'warning' ? 'Warning' : 'Failure';
  }
  return `${hex} ${name}`;
}
