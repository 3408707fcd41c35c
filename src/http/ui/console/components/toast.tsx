/** Short messages after an action (saved, sent, refused), announced to screen readers, gone after a while. */
import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useMemo, useState } from 'preact/hooks';

type Tone = 'ok' | 'bad' | 'info';
interface Toast { id: number; tone: Tone; text: string }
interface Toaster { ok(text: string): void; error(text: string | Error): void; info(text: string): void }

const ToastContext = createContext<Toaster>({ ok() {}, error() {}, info() {} });
let nextId = 1;

export function ToastProvider({ children }: { children: ComponentChildren }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((tone: Tone, text: string) => {
    const id = nextId++;
    setToasts((list) => [...list, { id, tone, text }]);
    setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), tone === 'bad' ? 10_000 : 5_000);
  }, []);
  const toaster = useMemo<Toaster>(() => ({
    ok: (text) => push('ok', text),
    info: (text) => push('info', text),
    error: (text) => push('bad', text instanceof Error ? text.message : text),
  }), [push]);
  return (
    <ToastContext.Provider value={toaster}>
      {children}
      <div class="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} class={`toast toast-${t.tone}`} role={t.tone === 'bad' ? 'alert' : undefined}>
            <span>{t.text}</span>
            <button type="button" aria-label="Dismiss" onClick={() => setToasts((list) => list.filter((x) => x.id !== t.id))}>×</button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

export const useToast = (): Toaster => useContext(ToastContext);
