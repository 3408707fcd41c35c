import type { AtriumModule } from '../modules/module.ts';
import { migration as deliveries } from './migrations/0006_events_deliveries.ts';

/** The delivery of outbox events to the handlers of every module. */
export const eventsModule: AtriumModule = { name: 'events', migrations: [deliveries] };
