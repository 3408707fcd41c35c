// Public API of Atrium's DICOM upper layer (PS3.8) and DIMSE messaging (PS3.7).
export {
  Association, AssociationRejectedError, DEFAULT_MAX_PDU_LENGTH, silentLogger,
} from './association.ts';
export { DimseError } from './message-streams.ts';
export type {
  PresentationContext, UserIdentity, IncomingRequest, IncomingDataset, DimseResponse, ResponseCommand, CloseReason, Closed,
  DimseLogger,
} from './association.ts';
export { startDicomServer, negotiateContexts, Rejection } from './acceptor.ts';
export type {
  DicomServer, DicomServerOptions, AssociateRequestInfo, AssociateDecision, AssociateAcceptance, AssociateRejection,
  ContextDecision, ProposedContext,
} from './acceptor.ts';
export { requestAssociation } from './requestor.ts';
export type { RequestAssociationOptions, RequestedContext } from './requestor.ts';
export { CommandField, NO_DATASET, Priority, encodeCommand, decodeCommand, commandName, isResponse, CommandError } from './command.ts';
export type { CommandSet } from './command.ts';
export { Status, describeStatus, statusCategory } from './status.ts';
export type { StatusCategory } from './status.ts';
export { handleEcho, echo, VERIFICATION_SOP_CLASS } from './echo.ts';
export type { EchoOptions } from './echo.ts';
export {
  PduError, PduType, ItemType, AbortReason, AbortSource, PresentationContextResult, UserIdentityType, DICOM_APPLICATION_CONTEXT,
  encodePdu, decodePdu, decodePduBody, encodePDataHeader, describeRejection, describeAbort, describeContextResult,
} from './pdu.ts';
export type {
  Pdu, AssociateRQ, AssociateAC, AssociateRJ, PDataTF, Pdv, Abort, ReleaseRQ, ReleaseRP, UserInformation,
  PresentationContextRQItem, PresentationContextACItem, RoleSelection, ExtendedNegotiation, CommonExtendedNegotiation, UserIdentityRQ,
} from './pdu.ts';
export { PduFramer } from './pdu-framer.ts';
export type { FrameEvent, PduFramerOptions } from './pdu-framer.ts';
