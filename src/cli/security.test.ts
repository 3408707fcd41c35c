/**
 * `atrium user add` and `atrium api-key add` are in the audit trail as the REST changes are: one
 * security-change record each, through the CLI, by the operating-system account on this host; a refused
 * one as a failure; neither the generated password nor the key in any record or export.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { MODULES, openArchive } from '../app.ts';
import { configSectionsOf } from '../modules/module.ts';
import { loadConfig, type AtriumConfig } from '../config/config.ts';
import { Metrics } from '../observability/metrics.ts';
import type { AuditRecord } from '../ports/audit-store.ts';
import { apiKeyAddCommand, userAddCommand } from './security.ts';

let dir: string;
let config: AtriumConfig;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-cli-security-'));
  config = loadConfig({ sections: configSectionsOf(MODULES), dataDir: dir, env: { ATRIUM_LOG_LEVEL: 'silent' } });
});
after(async () => await rm(dir, { recursive: true, force: true }));

/** Runs a command, returning what it printed. */
async function printed(run: () => Promise<number>): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => { lines.push(args.join(' ')); };
  try {
    return { code: await run(), output: lines.join('\n') };
  } finally {
    console.log = log;
  }
}

/** The trail (oldest first) and its exports, read from a fresh archive on the same data folder. */
async function trail(): Promise<{ records: AuditRecord[]; exports: string[] }> {
  const archive = await openArchive(config, { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
  try {
    const records = (await archive.audit.search({}, { limit: 1000, offset: 0 })).items.reverse();
    const exports: string[] = [];
    for (const format of ['json', 'fhir', 'dicom-xml'] as const) {
      let text = '';
      for await (const chunk of archive.audit.export({}, format)) text += chunk;
      exports.push(text);
    }
    return { records, exports };
  } finally {
    await archive.close();
  }
}

const cliUser = `${os.userInfo().username}@${os.hostname()} (atrium CLI)`;

test('user add and api-key add make one security-change record each; a refused user add a failure; no secret recorded', async () => {
  const user = await printed(() => userAddCommand(config, 'Carla', { role: ['radiologist'], displayName: 'Carla C.', passwordStdin: false }));
  assert.equal(user.code, 0);
  const password = /password: (\S+)/.exec(user.output)![1];

  await assert.rejects(userAddCommand(config, 'not a name!', { role: ['radiologist'], passwordStdin: false }), /a username is 1 to 64 characters/);

  const keyed = await printed(() => apiKeyAddCommand(config, 'nightly export', { role: ['technologist'], expiresDays: 1 }));
  assert.equal(keyed.code, 0);
  const key = keyed.output.trim().split('\n').at(-1)!;
  assert.match(key, /^atr_/);
  const keyId = key.slice(4, 16);

  const { records, exports } = await trail();
  const changes = records.filter((r) => r.action === 'security-change');
  assert.equal(changes.length, 3, JSON.stringify(records.map((r) => r.action)));
  for (const r of changes) {
    assert.equal(r.interface, 'cli');
    assert.deepEqual([r.principal.kind, r.principal.id, r.principal.displayName], ['anonymous', null, cliUser]);
    assert.equal(r.origin?.address, os.hostname());
  }
  assert.deepEqual(changes.map((r) => [r.outcome, r.objects]), [
    ['success', [{ type: 'user', id: 'carla', change: 'created', attributes: ['password', 'roles', 'displayName'] }]],
    ['minor-failure', [{ type: 'user', id: 'not a name!', change: 'created', attributes: ['password', 'roles'] }]],
    ['success', [{ type: 'api-key', id: keyId, name: 'nightly export', change: 'created', attributes: ['roles', 'expiresAt'] }]],
  ]);
  assert.match(changes[1].outcomeReason!, /a username is 1 to 64 characters/);

  const [, fhir, xml] = exports;
  const events = JSON.parse(fhir).entry.map((e: any) => e.resource);
  assert.deepEqual(events.filter((e: any) => e.type.code === '110113').map((e: any) => e.subtype.map((c: any) => c.code)),
    [['110137', '110136'], ['110137', '110136'], ['110137', '110136']]);
  assert.match(xml, /<EventID csd-code="110113" codeSystemName="DCM" originalText="Security Alert"\/>/);
  assert.match(xml, new RegExp(`ParticipantObjectID="${keyId}"`));
  for (const secret of [password, key]) {
    for (const text of exports) {
      assert.ok(!text.includes(secret), 'a secret is in an export');
      assert.ok(!text.includes(Buffer.from(secret).toString('base64')), 'a secret is in an export, base64-encoded');
    }
  }
});
