// An independent MPPS SCU for the tests: dcmjs-dimse (from the npm registry, not our DIMSE code) sends
// N-CREATE and N-SET requests on one association and reads back each response's status.
import dimse from 'dcmjs-dimse';

const { Client, Dataset } = dimse;
const { NCreateRequest, NSetRequest } = dimse.requests;
dimse.log.setLevel('error');

/** Modality Performed Procedure Step SOP Class (PS3.4 F.7.1). */
export const MPPS_SOP_CLASS = '1.2.840.10008.3.1.2.3.3';

export type MppsElements = Record<string, unknown>;
export interface MppsAnswer { status: number; errorComment: string; affectedSopInstanceUid: string }
export interface MppsRequest { kind: 'create' | 'set'; uid: string; elements: MppsElements }

/** Sends the requests on one association, each response's status and comment in order. */
export function sendMpps(port: number, calledAe: string, requests: MppsRequest[], callingAe: string): Promise<MppsAnswer[]> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const answers: MppsAnswer[] = [];
    for (const r of requests) {
      const rq = r.kind === 'create' ? new NCreateRequest(MPPS_SOP_CLASS, r.uid) : new NSetRequest(MPPS_SOP_CLASS, r.uid);
      rq.setDataset(new Dataset(r.elements));
      rq.on('response', (response: any) => {
        answers.push({ status: response.getStatus(), errorComment: response.getErrorComment?.() ?? '', affectedSopInstanceUid: response.getAffectedSopInstanceUid?.() ?? '' });
      });
      client.addRequest(rq);
    }
    client.on('associationRejected', (result: unknown) => reject(new Error(`association rejected: ${JSON.stringify(result)}`)));
    client.on('networkError', (e: Error) => reject(e));
    client.on('closed', () => resolve(answers));
    client.send('127.0.0.1', port, callingAe, calledAe);
  });
}

/** N-CREATE IN PROGRESS of the step `SPS-<accession>` (the Type 1 and 2 attributes of PS3.4 Table F.7.2-1). */
export function nCreate(step: { accessionNumber: string; studyInstanceUid: string; patientId: string; patientName: string; stationAeTitle: string }): MppsElements {
  return {
    SpecificCharacterSet: 'ISO_IR 192',
    ScheduledStepAttributesSequence: [{ StudyInstanceUID: step.studyInstanceUid, AccessionNumber: step.accessionNumber, RequestedProcedureID: '', ScheduledProcedureStepID: `SPS-${step.accessionNumber}`, ScheduledProtocolCodeSequence: [] }],
    PatientName: step.patientName, PatientID: step.patientId, PatientBirthDate: '', PatientSex: '', PerformedProcedureStepID: `PPS-${step.accessionNumber}`,
    PerformedStationAETitle: step.stationAeTitle, PerformedStationName: '', PerformedLocation: '', PerformedProcedureStepStartDate: '20240301', PerformedProcedureStepStartTime: '090500',
    PerformedProcedureStepStatus: 'IN PROGRESS', PerformedProcedureStepDescription: '', PerformedProcedureTypeDescription: '', ProcedureCodeSequence: [],
    PerformedProcedureStepEndDate: '', PerformedProcedureStepEndTime: '', Modality: 'CT', StudyID: '1', PerformedProtocolCodeSequence: [], PerformedSeriesSequence: [],
  };
}

/** N-SET COMPLETED naming `series` (Series Instance UID -> the SOP Instance UIDs of its CT images). */
export function nSetCompleted(series: Record<string, string[]>): MppsElements {
  return {
    PerformedProcedureStepStatus: 'COMPLETED', PerformedProcedureStepEndDate: '20240301', PerformedProcedureStepEndTime: '092000',
    PerformedSeriesSequence: Object.entries(series).map(([uid, sops]) => ({
      SeriesInstanceUID: uid, ProtocolName: 'HEAD', RetrieveAETitle: '', SeriesDescription: '', PerformingPhysicianName: '', OperatorsName: '',
      ReferencedImageSequence: sops.map((sop) => ({ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: sop })),
      ReferencedNonImageCompositeSOPInstanceSequence: [],
    })),
  };
}
