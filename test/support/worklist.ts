/**
 * Modality Worklist peers for the tests: DCMTK's `wlmscpfs` serving worklist files written from the same
 * orders Atrium holds (the side-by-side reference), and `findscu -W` as the modality asking, with each
 * response read back as keyword -> value (sequence items flattened as `Sequence[0].Keyword`).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, runTool, waitForPort } from './dcmtk.ts';

/** One scheduled procedure step of an order, as a worklist item carries it. */
export interface WorklistItem {
  patientName: string;
  patientId: string;
  issuerOfPatientId?: string;
  patientBirthDate?: string;
  patientSex?: string;
  accessionNumber: string;
  studyInstanceUid: string;
  requestedProcedureId: string;
  requestedProcedureDescription?: string;
  referringPhysicianName?: string;
  step: {
    stepId: string;
    modality: string;
    stationAeTitle: string;
    startDate: string;
    startTime: string;
    description?: string;
    performingPhysicianName?: string;
  };
}

const text = (value: string | undefined) => `[${(value ?? '').replace(/[\]\\]/g, '')}]`;

/** The item as a dcmdump-style text for `dump2dcm` (DCMTK's own writer, so the reference files are not ours). */
export function worklistDump(item: WorklistItem): string {
  const s = item.step;
  return [
    '(0008,0005) CS [ISO_IR 192]',
    `(0008,0050) SH ${text(item.accessionNumber)}`,
    `(0008,0090) PN ${text(item.referringPhysicianName)}`,
    `(0010,0010) PN ${text(item.patientName)}`,
    `(0010,0020) LO ${text(item.patientId)}`,
    `(0010,0021) LO ${text(item.issuerOfPatientId)}`,
    `(0010,0030) DA ${text(item.patientBirthDate)}`,
    `(0010,0040) CS ${text(item.patientSex)}`,
    `(0020,000d) UI ${text(item.studyInstanceUid)}`,
    '(0032,1060) LO ' + text(item.requestedProcedureDescription),
    '(0040,0100) SQ (Sequence with explicit length #=1)',
    '  (fffe,e000) na (Item with explicit length #=7)',
    `    (0008,0060) CS ${text(s.modality)}`,
    `    (0040,0001) AE ${text(s.stationAeTitle)}`,
    `    (0040,0002) DA ${text(s.startDate)}`,
    `    (0040,0003) TM ${text(s.startTime)}`,
    `    (0040,0006) PN ${text(s.performingPhysicianName)}`,
    `    (0040,0007) LO ${text(s.description)}`,
    `    (0040,0009) SH ${text(s.stepId)}`,
    '  (fffe,e00d) na (ItemDelimitationItem for re-encoding)',
    '(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)',
    `(0040,1001) SH ${text(item.requestedProcedureId)}`,
    '',
  ].join('\n');
}

export interface Wlmscpfs {
  port: number;
  aeTitle: string;
  stop(): Promise<void>;
}

/** Writes `items` as worklist files and starts `wlmscpfs` on them (called AE title `aeTitle`). */
export async function startWlmscpfs(items: WorklistItem[], aeTitle = 'WLMSCPFS'): Promise<Wlmscpfs> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'atrium-wlmscpfs-'));
  const dir = path.join(root, aeTitle);
  await mkdir(dir);
  await writeFile(path.join(dir, 'lockfile'), '');
  for (const [i, item] of items.entries()) {
    const dump = path.join(root, `item${i}.dump`);
    await writeFile(dump, worklistDump(item));
    const r = await runTool('dump2dcm', ['-q', '+te', dump, path.join(dir, `item${i}.wl`)], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`dump2dcm failed for item ${i}: ${r.output}`);
  }
  const port = await freePort();
  const child = spawn('wlmscpfs', ['-dfp', root, '-dfr', String(port)], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  try {
    await waitForPort(port, child);
  } catch (error) {
    throw new Error(`wlmscpfs did not start: ${(error as Error).message}\n${output}`);
  }
  return {
    port, aeTitle,
    async stop() {
      if (child.pid !== undefined && child.exitCode === null) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }
      await rm(root, { recursive: true, force: true });
    },
  };
}

/**
 * `findscu -W` against `port`/`calledAe` with `keys` (findscu -k syntax, e.g. `PatientName=DOE*`,
 * `ScheduledProcedureStepSequence[0].Modality=CT`): each response as keyword -> value, the values as
 * dcmdump prints them (DCMTK reads the responses, not our code).
 */
export async function findWorklist(port: number, calledAe: string, keys: string[], callingAe = 'MODALITY1'): Promise<Record<string, string>[]> {
  return await findscu('-W', port, calledAe, keys, callingAe);
}

/**
 * `findscu` with an information model (`-W` worklist, `-P` patient root, `-S` study root) and `keys`
 * (findscu -k syntax; `QueryRetrieveLevel=STUDY` among them for -P/-S): each response as keyword -> value.
 */
export async function findscu(model: '-W' | '-P' | '-S', port: number, calledAe: string, keys: string[], callingAe = 'MODALITY1'): Promise<Record<string, string>[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-findscu-'));
  try {
    const r = await runTool('findscu', [model, '-aet', callingAe, '-aec', calledAe, '-X', ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(port)], { cwd: dir, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`findscu ${model} failed (${r.code}): ${r.output}`);
    const files = (await readdir(dir)).filter((f) => f.startsWith('rsp')).sort();
    const responses: Record<string, string>[] = [];
    for (const file of files) {
      const dump = await runTool('dcmdump', ['-q', path.join(dir, file)], { timeoutMs: 30_000 });
      responses.push(flatten(dump.stdout));
    }
    return responses;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** dcmdump text (data set only: no File Meta) -> keyword -> value; inside a sequence `Sequence[i].Keyword`. */
function flatten(dump: string): Record<string, string> {
  const out: Record<string, string> = {};
  const stack: { name: string; item: number }[] = [];
  for (const line of dump.split('\n')) {
    const m = /^( *)\(([0-9a-f]{4}),([0-9a-f]{4})\) (\w\w) (.*?)\s+#\s*(?:-?\d+|u\/l),\s*\d+\s+(\w+)\s*$/i.exec(line);
    if (!m) continue;
    const [, indent, group, element, vr, raw, keyword] = m;
    if (group === '0002') continue;
    // dcmdump indents the elements of nesting level L by 4L spaces and the items of a level-L sequence by 4L+2.
    if (group.toLowerCase() === 'fffe') {
      if (element.toLowerCase() === 'e000') {
        const level = (indent.length - 2) / 4;
        stack.length = Math.min(stack.length, level + 1);
        if (stack[level]) stack[level].item++;
      }
      continue;
    }
    stack.length = Math.min(stack.length, indent.length / 4);
    const prefix = stack.map((x) => `${x.name}[${Math.max(0, x.item - 1)}].`).join('');
    if (vr === 'SQ') { stack.push({ name: keyword, item: 0 }); continue; }
    out[`${prefix}${keyword}`] = raw.startsWith('[') ? raw.slice(1, raw.lastIndexOf(']')) : raw.startsWith('(no value') ? '' : raw;
  }
  return out;
}
