// Bad input is answered, never a 500 (tracker issue 16): seeded mutations of real files sent over STOW-RS,
// C-STORE and `atrium import`, and random bytes on the DIMSE port, against one running archive. Every object gets
// a specific answer (a Failure Reason with the reason in words, a DICOM status, a quarantine reason code), the
// server keeps answering, its memory stays bounded, and the objects stored before are unchanged byte for byte.
// ATRIUM_FUZZ_SEED=<n> replays a run; the seed is printed with every failure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { killAllChildren, runTool } from '../../test/support/dcmtk.ts';
import { startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import {
  HOSTILE_TEXTS, Prng, absurdLength, flipHeaderBytes, headerOf, invalidVr, nestedSequences, randomBytes, setMetaInstanceUid, setText, truncate,
  type Mutation,
} from '../../test/support/dicom-mutations.ts';
import { startDicomService, type DicomService } from '../dimse/services/dicom-service.ts';
import { requestAssociation } from '../dimse/requestor.ts';
import { CommandField } from '../dimse/command.ts';
import { fileMetaLength } from '../dicom/part10-writer.ts';
import { generateUid } from '../dicom/uid.ts';
import { importCommand } from '../cli/import.ts';
import { REASON_TAG } from './stow.ts';

const SEED = Number(process.env.ATRIUM_FUZZ_SEED ?? 0x16a7e5);
const CORPUS = '/work/shared/testdata/dicom';
/** Well-formed sources; explicit VR little endian ones (the first four) also get text mutations and go over C-STORE. */
const SOURCES = ['CT_small.dcm', 'MR_small.dcm', 'rtplan.dcm', 'SC_rgb_rle.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'image_dfl.dcm',
  'UN_sequence.dcm', 'nested_priv_SQ.dcm', 'JPEG2000.dcm'];
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const BOUNDARY = 'fuzz-3f9c1d7e-boundary-a81b5c';
const TAG = { SOPInstanceUID: 0x00080018, StudyInstanceUID: 0x0020000d, PatientName: 0x00100010, SeriesInstanceUID: 0x0020000e };
/** How much the server process may grow while it is fed garbage (it runs in this process). */
const MEMORY_GROWTH_LIMIT = 250 * 1024 * 1024;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const seeded = (what: string) => `${what} [ATRIUM_FUZZ_SEED=${SEED}]`;
/** Visible ASCII and spaces (RFC 9110 field-vchar, obs-text excluded): what every header value must be. */
const SAFE_HEADER = /^[\x20-\x7e]*$/;

function multipart(parts: { bytes: Uint8Array; contentType?: string }[]): Buffer {
  const pieces: Buffer[] = [];
  for (const p of parts) pieces.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: ${p.contentType ?? 'application/dicom'}\r\n\r\n`, 'latin1'), Buffer.from(p.bytes), Buffer.from('\r\n'));
  pieces.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(pieces);
}

interface Source { name: string; bytes: Buffer; header: ReturnType<typeof headerOf>; explicitLE: boolean }

/** `count` mutations of the sources, the same for the same seed. */
function mutations(rng: Prng, sources: Source[], count: number): Mutation[] {
  const out: Mutation[] = [];
  const explicit = sources.filter((s) => s.explicitLE);
  while (out.length < count) {
    const s = rng.pick(sources);
    const kind = rng.int(7);
    if (kind === 0) out.push(truncate(s.name, s.bytes, rng));
    else if (kind === 1) out.push(flipHeaderBytes(s.name, s.bytes, rng));
    else if (kind === 2) out.push(absurdLength(s.name, s.bytes, s.header, rng));
    else if (kind === 3) out.push(randomBytes(rng));
    else if (kind === 4 && s.header.explicitVR) out.push(invalidVr(s.name, s.bytes, s.header, rng));
    else if (kind >= 5) {
      // Hostile text where it ends up in messages: UIDs (in reasons, Warning fields, log lines), the patient's name.
      const e = rng.pick(explicit);
      const text = rng.pick(HOSTILE_TEXTS);
      const where = rng.pick(['SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID', 'PatientName', 'MediaStorageSOPInstanceUID'] as const);
      const bytes = where === 'MediaStorageSOPInstanceUID' ? setMetaInstanceUid(e.bytes, e.header, text) : setText(e.bytes, e.header, TAG[where], text);
      out.push({ name: `${e.name}: ${where} set to ${JSON.stringify(text.toString('latin1'))}`, bytes });
    }
  }
  return out;
}

describe('bad input fuzzing: STOW-RS, C-STORE, import, the DIMSE port', { timeout: 240_000 }, () => {
  let t: TestArchive;
  let web: DicomwebServer;
  let dicom: DicomService;
  let work: string;
  let sources: Source[];
  const kept: { sop: string; study: string; series: string; sha: string }[] = [];
  let peakRss = 0;
  let baselineRss = 0;
  let sampler: NodeJS.Timeout | undefined;
  const aec = () => t.archive.config.dicom.aeTitle;

  async function stow(parts: { bytes: Uint8Array; contentType?: string }[], study?: string) {
    const res = await fetch(`${web.base}/studies${study ? `/${study}` : ''}`, {
      method: 'POST', body: multipart(parts), headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` },
    });
    const text = await res.text();
    let json: any;
    try { json = JSON.parse(text); } catch { /* checked below */ }
    return { status: res.status, headers: res.headers, text, json };
  }

  async function echo(): Promise<void> {
    const r = await runTool('echoscu', ['-aec', aec(), '127.0.0.1', String(dicom.port)], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, seeded(`C-ECHO after fuzzing: ${r.output}`));
  }

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    web = await startDicomwebServer(t.archive);
    dicom = await startDicomService(t.archive, { port: 0 });
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-fuzz-'));
    sources = await Promise.all(SOURCES.map(async (name) => {
      const bytes = await readFile(path.join(CORPUS, name));
      const header = headerOf(bytes);
      return { name, bytes, header, explicitLE: header.transferSyntaxUID === EXPLICIT_LE };
    }));
    // What must survive the fuzzing unchanged.
    const first = [sources[0], sources[1], sources[3]];
    const r = await stow(first.map((s) => ({ bytes: s.bytes })));
    assert.equal(r.status, 200, r.text);
    for (const item of r.json['00081199'].Value) {
      const [, study, series, sop] = /studies\/([\d.]+)\/series\/([\d.]+)\/instances\/([\d.]+)$/.exec(item['00081190'].Value[0])!;
      kept.push({ sop, study, series, sha: sha256(first[kept.length].bytes) });
    }
    baselineRss = process.memoryUsage().rss;
    sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 50);
    sampler.unref();
  });

  after(async () => {
    if (sampler) clearInterval(sampler);
    await dicom?.close();
    // Seen now and then, not caused by the fuzzing: the WADO-RS response of a single instance (application/dicom,
    // SC_rgb_rle.dcm) is read whole by the client but never ended on the server, and app.close() then waits for
    // the keep-alive timeout (72 s). Left to the read path; the connections are closed here so the test stays short.
    web?.app.server.closeAllConnections();
    await web?.close();
    await t?.cleanup();
    killAllChildren();
    if (work) await rm(work, { recursive: true, force: true });
  });

  // Regressions: what the fuzzing found, each kept as the case that reproduced it.

  test('regression (issue 16): a SOP Instance UID with control characters was put in the Warning header: HTTP 500', async () => {
    const ct = sources[0];
    for (const text of [Buffer.from('1.2.\x01\x02\x7f.3'), Buffer.from('1.2.3\r\nX-Injected: yes'), Buffer.from('1.2.840.ü.€.😀', 'utf8')]) {
      const r = await stow([{ bytes: setText(ct.bytes, ct.header, TAG.SOPInstanceUID, text) }]);
      assert.equal(r.status, 409, r.text);
      const warning = r.headers.get('warning')!;
      assert.match(warning, /^299 atrium "part 1: invalid-uid at \(0008,0018\), offset \d+; quarantined as #\d+"$/);
      assert.equal(r.headers.get('x-injected'), null);
      const failed = r.json['00081198'].Value[0];
      assert.equal(failed['00081197'].Value[0], 0xa900);
      // The whole reason, with the object's text, is in the body.
      assert.match(failed[REASON_TAG].Value[0], /SOPInstanceUID \(0008,0018\) is not a valid UID[^"]*"1\.2\./);
    }
  });

  test('regression: sequences nested 20,000 deep overflowed the call stack (import "failed", STOW-RS 0110); now quarantined as nesting-too-deep', async () => {
    const deep = nestedSequences(20_000, { sop: generateUid(), study: generateUid(), series: generateUid() });
    const result = await t.archive.ingest.ingest([deep.bytes], { source: 'test' });
    assert.equal(result.status, 'quarantined');
    assert.equal('reasonCode' in result && result.reasonCode, 'nesting-too-deep');
    const r = await stow([{ bytes: deep.bytes }]);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json['00081198'].Value[0]['00081197'].Value[0], 0xc000);
    assert.match(r.headers.get('warning')!, /nesting-too-deep at \(0040,A730\)/);
    // 128 levels are read.
    const ok = nestedSequences(127, { sop: generateUid(), study: generateUid(), series: generateUid() });
    assert.equal((await stow([{ bytes: ok.bytes }])).status, 200);
  });

  test('STOW-RS: every mutated part gets a Failure Reason with its reason, or is stored; no 5xx; header values safe', async (tc) => {
    tc.diagnostic(`seed ${SEED}`);
    const rng = new Prng(SEED);
    const all = mutations(rng, sources, 200);
    all.push(nestedSequences(20_000, { sop: generateUid(), study: generateUid(), series: generateUid() }));
    all.push(nestedSequences(20_000, { sop: generateUid(), study: generateUid(), series: generateUid() }, true));
    let stored = 0;
    let failed = 0;
    for (let i = 0; i < all.length; i += 20) {
      const batch = all.slice(i, i + 20);
      // Every fifth request names a study, so that mismatches are exercised; one part with a hostile content type.
      const study = (i / 20) % 5 === 4 ? kept[0].study : undefined;
      const parts: { bytes: Uint8Array; contentType?: string }[] = batch.map((m) => ({ bytes: m.bytes }));
      if ((i / 20) % 3 === 1) parts.push({ bytes: sources[0].bytes, contentType: 'application/x-\xfc\xe9; q="\\' });
      const r = await stow(parts, study);
      const names = batch.map((m) => m.name).join('\n  ');
      assert.ok(r.status < 500, seeded(`HTTP ${r.status} for a request of:\n  ${names}\n${r.text}`));
      for (const [field, value] of r.headers) assert.match(value, SAFE_HEADER, seeded(`header ${field} not safe: ${JSON.stringify(value)}`));
      if (r.status === 400) {
        // A body the multipart reader refuses as a whole: problem+json that says why.
        assert.equal(r.headers.get('content-type'), 'application/problem+json; charset=utf-8', r.text);
        assert.ok(r.json?.detail, seeded(`400 without a detail: ${r.text}`));
        continue;
      }
      assert.ok([200, 202, 409].includes(r.status), seeded(`HTTP ${r.status}: ${r.text}`));
      const ok: any[] = r.json['00081199']?.Value ?? [];
      const bad: any[] = r.json['00081198']?.Value ?? [];
      assert.equal(ok.length + bad.length, parts.length, seeded(`an entry per part:\n  ${names}`));
      for (const item of bad) {
        const reason = item['00081197']?.Value?.[0];
        // 0110 (processing failure) and A700 (out of resources) are the archive's own faults, not the object's.
        assert.ok(reason && reason !== 0x0110 && reason !== 0xa700, seeded(`Failure Reason ${reason?.toString(16)} in:\n  ${names}\n${JSON.stringify(item)}`));
        assert.ok(String(item[REASON_TAG]?.Value?.[0] ?? '').length > 0, seeded(`a reason in words: ${JSON.stringify(item)}`));
      }
      stored += ok.length;
      failed += bad.length;
    }
    tc.diagnostic(`${all.length} mutations: ${stored} stored (harmless mutations), ${failed} failed`);
    assert.ok(failed > all.length / 2, 'most mutations are refused');
  });

  test('C-STORE (our SCU): every mutated data set gets a response status; failures are a specific status with a comment', async (tc) => {
    const rng = new Prng(SEED + 1);
    const explicit = sources.filter((s) => s.explicitLE && s.header.fileMeta);
    const text = (ds: { elements: { tag: number; value?: Uint8Array }[] } | null, tag: number) =>
      Buffer.from(ds!.elements.find((e) => e.tag === tag)!.value!).toString('latin1').replace(/[\0 ]+$/, '');
    const classOf = new Map(explicit.map((s) => [s.name, text(s.header.fileMeta, 0x00020002)]));
    const instanceOf = new Map(explicit.map((s) => [s.name, text(s.header.dataset, TAG.SOPInstanceUID)]));
    const classes = [...new Set(classOf.values())];
    const all = mutations(rng, explicit, 80).filter((m) => m.bytes.length > 0);
    const assoc = await requestAssociation({ host: '127.0.0.1', port: dicom.port, callingAETitle: 'FUZZSCU', calledAETitle: aec(),
      contexts: classes.map((abstractSyntax) => ({ abstractSyntax, transferSyntaxes: [EXPLICIT_LE] })) });
    const statuses = new Map<string, number>();
    try {
      for (const m of all) {
        const source = explicit.find((s) => m.name.startsWith(s.name)) ?? explicit[0];
        const sopClass = classOf.get(source.name)!;
        // The data set as a C-STORE carries it: what follows the file meta (the whole thing when there is none to find).
        let offset = 0;
        try { offset = fileMetaLength(m.bytes) ?? 0; } catch { offset = 0; }
        const dataset = m.bytes.subarray(offset);
        let status: number | undefined;
        let comment: string | undefined;
        for await (const rsp of assoc.request(assoc.findContext(sopClass)!.id, {
          // The source's UID, as a modality would send it: a mutated copy of a stored object must not replace it.
          CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: instanceOf.get(source.name)!, Priority: 0,
        }, dataset)) {
          status = rsp.command.Status;
          comment = rsp.command.ErrorComment;
        }
        assert.ok(status !== undefined, seeded(`no C-STORE-RSP for ${m.name}`));
        const hex = status.toString(16).padStart(4, '0');
        statuses.set(hex, (statuses.get(hex) ?? 0) + 1);
        // 0000 success, 0111/0122/A9xx/Cxxx the failures the standard names for bad objects; A700 would be the archive's own fault.
        assert.ok(status === 0 || status === 0x0111 || status === 0x0122 || (status >= 0xa900 && status <= 0xa9ff) || (status >= 0xc000 && status <= 0xcfff),
          seeded(`C-STORE status ${hex} for ${m.name}: ${comment}`));
        if (status !== 0) assert.ok(comment && comment.length > 0, seeded(`no Error Comment with ${hex} for ${m.name}`));
      }
    } finally {
      await assoc.release().catch(() => assoc.abort());
    }
    tc.diagnostic(`${all.length} C-STOREs, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  test('C-STORE (storescu): well-formed objects carrying hostile text are refused with a status, the association goes on', async () => {
    const ct = sources[0];
    const files = HOSTILE_TEXTS.map((_, i) => path.join(work, `hostile-${i}.dcm`));
    await Promise.all(HOSTILE_TEXTS.map((text, i) => writeFile(files[i], setText(ct.bytes, ct.header, TAG.StudyInstanceUID, text))));
    // Last, a well-formed object of its own (a new UID): stored on the same association.
    const fresh = Buffer.from(generateUid());
    const good = path.join(work, 'fresh.dcm');
    await writeFile(good, setText(setMetaInstanceUid(ct.bytes, ct.header, fresh), headerOf(setMetaInstanceUid(ct.bytes, ct.header, fresh)), TAG.SOPInstanceUID, fresh));
    const r = await runTool('storescu', ['-v', '-nh', '-aec', aec(), '127.0.0.1', String(dicom.port), ...files, good], { timeoutMs: 60_000 });
    const responses = r.output.match(/Received Store Response \(([^)]*)\)/g) ?? [];
    assert.equal(responses.length, files.length + 1, seeded(r.output));
    assert.match(responses.at(-1)!, /Success/);
    for (const line of responses.slice(0, -1)) assert.doesNotMatch(line, /Success|Out of Resources/i, seeded(r.output));
  });

  test('atrium import: every mutated file is stored, quarantined with a reason code or skipped as not DICOM; none fails', async () => {
    const rng = new Prng(SEED + 2);
    const dir = path.join(work, 'import');
    const all = mutations(rng, sources, 60);
    all.push(nestedSequences(20_000, { sop: generateUid(), study: generateUid(), series: generateUid() }));
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    await Promise.all(all.map((m, i) => writeFile(path.join(dir, `m${String(i).padStart(3, '0')}.dcm`), m.bytes)));
    const printed: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => { printed.push(args.join(' ')); };
    let code: number;
    try {
      code = await importCommand(t.config, [dir], { concurrency: 2, json: true, progress: false, verbose: false });
    } finally {
      console.log = log;
    }
    const summary = JSON.parse(printed.join('\n'));
    assert.equal(summary.files, all.length);
    assert.deepEqual(summary.failed, [], seeded('no file fails (a failure is an error of the archive, not of the file)'));
    for (const q of summary.quarantined) {
      assert.match(q.reasonCode, /^[a-z-]+$/, seeded(JSON.stringify(q)));
      const i = Number(/m(\d+)\.dcm$/.exec(q.file)![1]);
      assert.ok(q.reason, seeded(`no reason for ${all[i].name}`));
    }
    assert.equal(code, summary.quarantined.length > 0 ? 1 : 0);
  });

  test('raw random bytes on the DIMSE port: each connection is dropped or aborted, the server goes on', async () => {
    const rng = new Prng(SEED + 3);
    const sends: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const body = rng.bytes(rng.int(2048));
      // Half look like a PDU header (a known type, a length), so that the PDU reader goes further.
      if (i % 2 === 0 && body.length >= 6) {
        body[0] = rng.pick([1, 2, 3, 4, 5, 6, 7, 0x10]);
        body[1] = 0;
        body.writeUInt32BE(rng.next() < 0.2 ? 0xfffffff0 : Math.max(0, body.length - 6), 2);
      }
      sends.push(body);
    }
    await Promise.all(sends.map((bytes) => new Promise<void>((resolve) => {
      const socket = net.connect(dicom.port, '127.0.0.1', () => socket.end(bytes));
      socket.setTimeout(10_000, () => socket.destroy());
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      socket.on('data', () => {});
    })));
    await echo();
  });

  test('afterwards: the server answers C-ECHO and QIDO, the objects stored before are unchanged, memory stayed bounded', async (tc) => {
    await echo();
    const q = await fetch(`${web.base}/studies?StudyInstanceUID=${kept[0].study}`);
    assert.equal(q.status, 200);
    assert.equal((await q.json() as unknown[]).length, 1);
    for (const k of kept) {
      const res = await fetch(`${web.base}/studies/${k.study}/series/${k.series}/instances/${k.sop}`, { headers: { accept: 'application/dicom; transfer-syntax=*' } });
      assert.equal(res.status, 200);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), k.sha, `${k.sop} changed`);
    }
    const growth = peakRss - baselineRss;
    tc.diagnostic(`peak RSS ${Math.round(peakRss / 1048576)} MB, ${Math.round(growth / 1048576)} MB above the start`);
    assert.ok(growth < MEMORY_GROWTH_LIMIT, seeded(`RSS grew by ${Math.round(growth / 1048576)} MB while fuzzing`));
  });
});
