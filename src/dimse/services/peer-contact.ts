import type { ApplicationEntities } from '../../dicom-access/application-entities.ts';

/** What an outbound operation's result says about the contact: whether it did what was asked, and one line. */
export interface ContactSummary {
  ok: boolean;
  detail: string;
}

/**
 * Runs one outbound operation on the peer `aeTitle` (an association of ours: echo, send, find, retrieve, a
 * C-MOVE's sub-operations, a storage commitment result) and records its outcome as the peer's last contact,
 * once, when it is over: success or failure, the operation's own result or error is what the caller gets.
 */
export async function contacting<T>(entities: Pick<ApplicationEntities, 'recordContact'>, aeTitle: string, operation: string,
  run: () => Promise<T>, summary: (result: T) => ContactSummary): Promise<T> {
  let result: T;
  try {
    result = await run();
  } catch (error) {
    await entities.recordContact(aeTitle, 'failed', `${operation}: ${(error as Error).message}`);
    throw error;
  }
  let outcome: ContactSummary;
  try {
    outcome = summary(result);
  } catch {
    outcome = { ok: true, detail: 'done' };
  }
  await entities.recordContact(aeTitle, outcome.ok ? 'ok' : 'failed', `${operation}: ${outcome.detail}`);
  return result;
}

/** "3 completed, 1 failed, 0 warning" of a C-STORE, C-MOVE or C-GET. */
export function subOperations(counts: { completed: number; failed: number; warning: number }): string {
  return `${counts.completed} completed, ${counts.failed} failed, ${counts.warning} warning`;
}
