/**
 * Who is signed in and what they may do, from GET /api/me. The console hides what a role may not use,
 * but the server decides: every request is checked by the same route rules as any REST client's.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export interface Me {
  kind: string;
  id: string;
  name: string;
  roles: string[];
  /** The actions any of the principal's roles grants (src/security/policy.ts). */
  actions: string[];
  authMethod: string;
}

export interface Session {
  me: Me;
  can(action: string): boolean;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside the signed-in console');
  return session;
}

export function sessionOf(me: Me): Session {
  const actions = new Set(me.actions ?? []);
  return { me, can: (action) => actions.has(action) };
}
