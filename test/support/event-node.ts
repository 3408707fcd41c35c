/**
 * A node that dies while delivering (src/events/dispatcher.test.ts): it claims the first delivery of the
 * database in ATRIUM_TEST_DB and SIGKILLs itself inside the handler, before success can be recorded.
 */
import { pino } from 'pino';
import { Database } from '../../src/database/database.ts';
import { SqlEventOutbox } from '../../src/adapters/index/sql-event-outbox.ts';
import { EventDispatcher } from '../../src/events/dispatcher.ts';
import { on } from '../../src/events/event-map.ts';

const database = Database.open({ engine: 'postgres', connectionString: process.env.ATRIUM_TEST_DB! });
const dispatcher = new EventDispatcher({
  outbox: new SqlEventOutbox(database), log: pino({ level: 'silent' }), owner: 'killed-node', leaseMs: 60_000,
  handlers: [on('InstanceStored', 'test.crash', async () => { process.kill(process.pid, 'SIGKILL'); await new Promise(() => {}); })],
});
await dispatcher.runOnce();
