// Verification Service Class (PS3.4 Annex A): C-ECHO SCP handler and SCU helper.
import type { Association, IncomingRequest } from './association.ts';
import { CommandField } from './command.ts';
import { ImplicitVRLittleEndian, ExplicitVRLittleEndian } from '../dicom/transfer-syntax.ts';
import { requestAssociation } from './requestor.ts';
import type { RequestAssociationOptions } from './requestor.ts';
import { Status } from './status.ts';

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

/** Answers a C-ECHO-RQ with Success. */
export async function handleEcho(request: IncomingRequest, association: Association): Promise<void> {
  await request.dataset?.discard();
  await association.respond(request, { CommandField: CommandField.C_ECHO_RSP, Status: Status.Success,
    AffectedSOPClassUID: request.command.AffectedSOPClassUID ?? VERIFICATION_SOP_CLASS });
}

export type EchoOptions = Omit<RequestAssociationOptions, 'contexts'>;

/** Associates with Verification, sends a C-ECHO, releases; returns the status of the C-ECHO-RSP. */
export async function echo(options: EchoOptions): Promise<number> {
  const association = await requestAssociation({
    ...options,
    contexts: [{ abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [ExplicitVRLittleEndian, ImplicitVRLittleEndian] }],
  });
  try {
    const pc = association.findContext(VERIFICATION_SOP_CLASS);
    if (!pc) throw new Error(`${options.calledAETitle} did not accept the Verification SOP Class`);
    let status: number | undefined;
    for await (const rsp of association.request(pc.id, { CommandField: CommandField.C_ECHO_RQ, AffectedSOPClassUID: VERIFICATION_SOP_CLASS })) {
      status = rsp.command.Status;
    }
    if (status === undefined) throw new Error('C-ECHO-RSP without a status');
    await association.release();
    return status;
  } catch (e) {
    if (association.isOpen) association.abort();
    throw e;
  }
}
