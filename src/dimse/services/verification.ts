import { CommandField } from '../command.ts';
import { handleEcho, VERIFICATION_SOP_CLASS } from '../echo.ts';
import { uncompressedTransferSyntax, type DimseService } from './dimse-service.ts';

/** The Verification SOP Class SCP (PS3.4 Annex A): C-ECHO, for every peer allowed to echo. */
export const verificationService: DimseService = {
  name: 'verification',
  accepts: (pc) => pc.abstractSyntax === VERIFICATION_SOP_CLASS,
  commands: [CommandField.C_ECHO_RQ],
  operation: 'echo',
  action: null,
  auditAction: null,
  transferSyntax: uncompressedTransferSyntax,
  handle: ({ request, association }) => handleEcho(request, association),
};
