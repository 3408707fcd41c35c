import type { AtriumModule } from '../modules/module.ts';
import { migration as usersSessionsKeys } from './migrations/0003_security_users_sessions_keys.ts';

/** Users, sessions, API keys and the lock-out counters. */
export const securityModule: AtriumModule = { name: 'security', migrations: [usersSessionsKeys] };
