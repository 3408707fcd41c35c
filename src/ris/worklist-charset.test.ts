// Non-ASCII patient names from HL7 to the Modality Worklist, on SQLite and PostgreSQL: orders sent by
// Debian's mllp_send in ISO 8859/1 (MSH-18 8859/1, Latin-1 bytes) and in UTF-8 (MSH-18 UNICODE UTF-8, one
// name with a letter Latin-1 does not have), then DCMTK `findscu -W` asking with Specific Character Set
// ISO_IR 100 and ISO_IR 192 (query files written by dump2dcm from bytes in that character set). Each
// response's PatientName is checked twice by DCMTK: its bytes as they are (dcmdump), and decoded by the
// character set the response declares (dcmdump +U8): the request's ISO_IR 100 when the name fits Latin-1,
// else ISO_IR 192. Matching on non-ASCII names with * and ? works in both character sets, folded (the
// default) and literal. The archive's C-FIND (findscu -S) answers in the same character sets.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive } from '../../test/support/archive.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { mllpSend } from '../../test/support/mllp-send.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { startHl7Listeners } from './module.ts';

/** The patients: a Latin-1 name sent in ISO 8859/1, a Latin-1 name sent in UTF-8, a name outside Latin-1 sent in UTF-8. */
const PATIENTS = [
  { id: 'CS1', hl7Name: 'MÜLLER^JÜRGEN', name: 'MÜLLER^JÜRGEN', charset: '8859/1', accession: 'CSACC1' },
  { id: 'CS2', hl7Name: 'STRÖM^ÅSA', name: 'STRÖM^ÅSA', charset: 'UNICODE UTF-8', accession: 'CSACC2' },
  { id: 'CS3', hl7Name: 'ŁUKASIEWICZ^JÓZEF', name: 'ŁUKASIEWICZ^JÓZEF', charset: 'UNICODE UTF-8', accession: 'CSACC3' },
];
const ENCODING: Record<string, BufferEncoding> = { 'ISO_IR 100': 'latin1', 'ISO_IR 192': 'utf8' };

function run(command: string, args: string[], cwd?: string): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: 60_000, encoding: 'buffer' }, (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() }));
  });
}

/** One value of a dcmdump line (`(0010,0010) PN [value]`), as the bytes dcmdump printed. */
function dumpedValue(stdout: Buffer, tag: string): Buffer | null {
  const text = stdout.toString('latin1');
  const m = new RegExp(`^\\s*\\(${tag}\\) \\w\\w \\[(.*?)\\]`, 'm').exec(text);
  return m ? Buffer.from(m[1]!, 'latin1') : null;
}

interface Answer { characterSet: string; nameBytes: Buffer; decodedName: string; patientId: string }

/**
 * findscu -W with a query data set whose Specific Character Set is `characterSet` and whose PatientName key
 * is `patientName` (bytes in that character set), written by dump2dcm; each response read by dcmdump.
 */
async function ask(port: number, characterSet: 'ISO_IR 100' | 'ISO_IR 192', patientName: string, model: 'worklist' | 'study' = 'worklist'): Promise<Answer[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-wl-charset-'));
  try {
    const dump = [
      `(0008,0005) CS [${characterSet}]`,
      '(0008,0050) SH []',
      ...(model === 'study' ? ['(0008,0052) CS [STUDY]'] : []),
      `(0010,0010) PN [${patientName}]`,
      '(0010,0020) LO []',
      ...(model === 'study' ? ['(0020,000d) UI []'] : [
        '(0040,0100) SQ (Sequence with explicit length #=1)',
        '  (fffe,e000) na (Item with explicit length #=2)',
        '    (0008,0060) CS []',
        '    (0040,0001) AE []',
        '  (fffe,e00d) na (ItemDelimitationItem for re-encoding)',
        '(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)',
      ]),
      '',
    ].join('\n');
    await writeFile(path.join(dir, 'query.dump'), Buffer.from(dump, ENCODING[characterSet]));
    const made = await run('dump2dcm', ['-q', 'query.dump', 'query.dcm'], dir);
    assert.equal(made.code, 0, made.stderr);
    const asked = await run('findscu', [model === 'study' ? '-S' : '-W', '-aet', 'MODALITY1', '-aec', 'ATRIUM', '-X', '127.0.0.1', String(port), 'query.dcm'], dir);
    assert.equal(asked.code, 0, asked.stderr);
    const answers: Answer[] = [];
    for (const file of (await readdir(dir)).filter((f) => f.startsWith('rsp')).sort()) {
      const raw = await run('dcmdump', ['-q', file], dir);
      const utf8 = await run('dcmdump', ['-q', '+U8', file], dir);
      assert.equal(utf8.code, 0, `dcmdump +U8 ${file}: ${utf8.stderr}`);
      answers.push({
        characterSet: dumpedValue(raw.stdout, '0008,0005')!.toString('latin1'), nameBytes: dumpedValue(raw.stdout, '0010,0010')!,
        decodedName: dumpedValue(utf8.stdout, '0010,0010')!.toString('utf8'), patientId: dumpedValue(raw.stdout, '0010,0020')!.toString('latin1'),
      });
    }
    return answers.sort((a, b) => a.patientId.localeCompare(b.patientId));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`worklist: non-ASCII patient names from HL7 8859/1 and UTF-8 to findscu -W in ISO_IR 100 and ISO_IR 192 on ${engine}`, async (t) => {
    const ta = await createTestArchive(engine);
    after(() => ta.cleanup());
    const archive = ta.archive;
    await archive.peers.upsert({ aeTitle: 'MODALITY1', host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'store'] });
    const [listener] = await startHl7Listeners(archive, { port: 0, host: '127.0.0.1' });
    after(() => listener!.close());
    let dicom = await startDicomService(archive, { port: 0 });
    after(() => dicom.close());

    await t.test('the orders arrive over MLLP in ISO 8859/1 and UTF-8: AA, the names decoded', async () => {
      const messages = PATIENTS.flatMap((p) => [
        hl7([`PID|1||${p.id}^^^HOSP^MR||${p.hl7Name}||19700101|O`], { charset: p.charset, controlId: `${p.id}-A04` }),
        hl7([`PID|1||${p.id}^^^HOSP^MR||${p.hl7Name}||19700101|O`, `ORC|NW|PL-${p.accession}|FL-${p.accession}`,
          seg('OBR', { 1: '1', 2: `PL-${p.accession}`, 4: 'MRBRAIN^MR Brain^LOCAL', 18: p.accession, 20: `SPS-${p.accession}`, 21: 'MR_CHARSET', 24: 'MR', 27: '^^^20240401080000^^R' })],
        { type: 'ORM^O01', charset: p.charset, controlId: `${p.id}-ORM` }),
      ]);
      // The Latin-1 message really is Latin-1 on the wire (Ü is one byte, 0xDC), the UTF-8 one UTF-8.
      assert.ok(messages[0]!.includes(Buffer.from([0x4d, 0xdc, 0x4c])));
      assert.ok(messages[4]!.includes(Buffer.from('Ł', 'utf8')));
      const acks = await mllpSend(listener!.port, messages);
      assert.deepEqual(acks.map((a) => a.code), ['AA', 'AA', 'AA', 'AA', 'AA', 'AA'], acks.map((a) => a.text).join('; '));
    });

    await t.test('ISO_IR 100 asking for MÜLL*: MÜLLER^JÜRGEN in Latin-1 bytes, declared ISO_IR 100', async () => {
      const [answer, ...more] = await ask(dicom.port, 'ISO_IR 100', 'MÜLL*');
      assert.equal(more.length, 0);
      assert.equal(answer!.patientId, 'CS1');
      assert.equal(answer!.characterSet, 'ISO_IR 100');
      assert.deepEqual(answer!.nameBytes, Buffer.from('MÜLLER^JÜRGEN', 'latin1'));
      assert.equal(answer!.decodedName, 'MÜLLER^JÜRGEN');
    });

    await t.test('ISO_IR 192 asking for MÜLL*: the same item in UTF-8 bytes, declared ISO_IR 192', async () => {
      const [answer, ...more] = await ask(dicom.port, 'ISO_IR 192', 'MÜLL*');
      assert.equal(more.length, 0);
      assert.deepEqual([answer!.patientId, answer!.characterSet, answer!.decodedName], ['CS1', 'ISO_IR 192', 'MÜLLER^JÜRGEN']);
      assert.deepEqual(answer!.nameBytes, Buffer.from('MÜLLER^JÜRGEN', 'utf8'));
    });

    await t.test('ISO_IR 100 asking for every item: Latin-1 where the name fits, ISO_IR 192 for the one that does not', async () => {
      const answers = await ask(dicom.port, 'ISO_IR 100', '*');
      assert.deepEqual(answers.map((a) => [a.patientId, a.characterSet, a.decodedName]), [
        ['CS1', 'ISO_IR 100', 'MÜLLER^JÜRGEN'], ['CS2', 'ISO_IR 100', 'STRÖM^ÅSA'], ['CS3', 'ISO_IR 192', 'ŁUKASIEWICZ^JÓZEF'],
      ]);
      for (const a of answers) assert.deepEqual(a.nameBytes, Buffer.from(a.decodedName, ENCODING[a.characterSet]), `${a.patientId}: the bytes are the declared character set's`);
    });

    await t.test('wild cards on non-ASCII letters, in either character set (dicom.caseInsensitivePersonNames, the default: case and accents folded)', async () => {
      const ids = async (cs: 'ISO_IR 100' | 'ISO_IR 192', name: string) => (await ask(dicom.port, cs, name)).map((a) => a.patientId);
      assert.deepEqual(await ids('ISO_IR 192', 'ŁUK*'), ['CS3']);
      assert.deepEqual(await ids('ISO_IR 192', '*^JÓZEF'), ['CS3']);
      assert.deepEqual(await ids('ISO_IR 192', '?UKASIEWICZ*'), ['CS3'], '? is one character, Ł included');
      assert.deepEqual(await ids('ISO_IR 100', 'M?LLER^J?RGEN'), ['CS1'], '? matches Ü');
      assert.deepEqual(await ids('ISO_IR 100', 'STRÖM*'), ['CS2'], 'a name that came in UTF-8, asked for in Latin-1');
      assert.deepEqual(await ids('ISO_IR 100', 'MÜLLER^JÜRGEN'), ['CS1'], 'exact');
      assert.deepEqual(await ids('ISO_IR 100', 'müll*'), ['CS1'], 'case folded');
      assert.deepEqual(await ids('ISO_IR 192', 'MULLER*'), ['CS1'], 'accents folded');
      assert.deepEqual(await ids('ISO_IR 100', '*Å*'), ['CS2', 'CS3'], 'Å folds to A, which ŁUKASIEWICZ has');
    });

    await t.test('the archive\'s C-FIND (Study Root, findscu -S) answers in the same character sets', async () => {
      for (const p of [PATIENTS[0]!, PATIENTS[2]!]) {
        const uid = `1.2.826.0.1.3680043.10.543.77.${p.id.slice(2)}`;
        const stored = await archive.ingest.ingest(syntheticInstance({ patientId: p.id, patientName: p.name, accessionNumber: p.accession, studyInstanceUid: uid, seriesInstanceUid: `${uid}.1`, sopInstanceUid: `${uid}.1.1`, modality: 'MR' }), { source: 'test' });
        assert.equal(stored.status, 'stored');
      }
      const latin = await ask(dicom.port, 'ISO_IR 100', 'MÜLL*', 'study');
      assert.deepEqual(latin.map((a) => [a.patientId, a.characterSet, a.decodedName]), [['CS1', 'ISO_IR 100', 'MÜLLER^JÜRGEN']]);
      assert.deepEqual(latin[0]!.nameBytes, Buffer.from('MÜLLER^JÜRGEN', 'latin1'));
      const all = await ask(dicom.port, 'ISO_IR 100', '*', 'study');
      assert.deepEqual(all.map((a) => [a.patientId, a.characterSet, a.decodedName]), [['CS1', 'ISO_IR 100', 'MÜLLER^JÜRGEN'], ['CS3', 'ISO_IR 192', 'ŁUKASIEWICZ^JÓZEF']]);
      const utf8 = await ask(dicom.port, 'ISO_IR 192', 'ŁUK*', 'study');
      assert.deepEqual(utf8.map((a) => [a.patientId, a.characterSet, a.decodedName]), [['CS3', 'ISO_IR 192', 'ŁUKASIEWICZ^JÓZEF']]);
      assert.deepEqual(utf8[0]!.nameBytes, Buffer.from('ŁUKASIEWICZ^JÓZEF', 'utf8'));
    });

    await t.test('the same with dicom.caseInsensitivePersonNames off: literal, case- and accent-sensitive, in SQL', async () => {
      // The worklist service reads the setting when the archive builds its DIMSE services: another node of
      // the same storage, opened with it off.
      await dicom.close();
      archive.config.dicom.caseInsensitivePersonNames = false;
      const literal = await ta.reopen();
      assert.equal(literal.config.dicom.caseInsensitivePersonNames, false);
      dicom = await startDicomService(literal, { port: 0 });
      const ids = async (cs: 'ISO_IR 100' | 'ISO_IR 192', name: string) => (await ask(dicom.port, cs, name)).map((a) => a.patientId);
      assert.deepEqual(await ids('ISO_IR 100', 'MÜLL*'), ['CS1']);
      assert.deepEqual(await ids('ISO_IR 192', '?UKASIEWICZ*'), ['CS3'], '? is one character (GLOB on SQLite, LIKE _ on PostgreSQL), Ł included');
      assert.deepEqual(await ids('ISO_IR 100', 'M?LLER^J?RGEN'), ['CS1']);
      assert.deepEqual(await ids('ISO_IR 100', '*Å*'), ['CS2']);
      assert.deepEqual(await ids('ISO_IR 192', 'MULLER*'), []);
      assert.deepEqual(await ids('ISO_IR 100', 'müll*'), []);
      const [answer] = await ask(dicom.port, 'ISO_IR 100', 'STRÖM^ÅSA');
      assert.deepEqual([answer!.patientId, answer!.characterSet, answer!.nameBytes], ['CS2', 'ISO_IR 100', Buffer.from('STRÖM^ÅSA', 'latin1')]);
    });
  });
}
