/**
 * The console's one way to the admin REST API: same-origin fetch with the session cookie, problem JSON
 * (RFC 9457) turned into an ApiError whose message is the server's `detail`, and hooks for loading
 * (with reload) and for polling where work is in progress.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Record<string, unknown>;
  constructor(status: number, problem: Record<string, unknown>) {
    super(String(problem.detail ?? problem.title ?? `HTTP ${status}`));
    this.status = status;
    this.problem = problem;
  }
}

export async function api<T = any>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers: { accept: 'application/json', ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    credentials: 'same-origin',
  });
  if (res.status === 401) {
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new ApiError(401, { detail: 'signed out' });
  }
  const text = await res.text();
  const body = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, body ?? {});
  return body as T;
}

/** A query string from the set values only. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload(): void;
}

/**
 * Loads `path` (re-loads when it changes) and, with `pollMs`, again every `pollMs` while the tab is
 * visible: the live view of jobs and ingest. A failed poll keeps the last data and shows the error.
 */
export function useApi<T = any>(path: string | null, options: { pollMs?: number } = {}): Resource<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: path !== null });
  const [tick, setTick] = useState(0);
  const current = useRef(path);
  current.current = path;
  useEffect(() => {
    if (path === null) return;
    let cancelled = false;
    setState((s) => ({ ...s, loading: true }));
    api<T>(path).then(
      (data) => { if (!cancelled) setState({ data, loading: false }); },
      (error: Error) => { if (!cancelled) setState((s) => ({ data: s.data, error, loading: false })); },
    );
    return () => { cancelled = true; };
  }, [path, tick]);
  useEffect(() => {
    if (!options.pollMs || path === null) return;
    const timer = setInterval(() => { if (document.visibilityState === 'visible') setTick((n) => n + 1); }, options.pollMs);
    return () => clearInterval(timer);
  }, [path, options.pollMs]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}
