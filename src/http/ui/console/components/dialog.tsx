/**
 * A modal on the browser's own <dialog> (focus trap, Escape, backdrop come with it): confirmation of
 * destructive actions and small forms.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

interface Props {
  open: boolean;
  title: string;
  onClose(): void;
  children: ComponentChildren;
}

export function Dialog({ open, title, onClose, children }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby="dialog-title" onClose={onClose} onCancel={onClose}>
      <h2 id="dialog-title">{title}</h2>
      {open && children}
    </dialog>
  );
}

/** "Are you sure?" with the consequence spelled out; the confirming button says what it does. */
export function ConfirmDialog({ open, title, confirmLabel, danger = true, busy, onConfirm, onClose, children }: Props & {
  confirmLabel: string; danger?: boolean; busy?: boolean; onConfirm(): void;
}) {
  return (
    <Dialog open={open} title={title} onClose={onClose}>
      <div class="dialog-body">{children}</div>
      <div class="dialog-actions">
        <button type="button" onClick={onClose}>Cancel</button>
        <button type="button" class={danger ? 'danger' : 'primary'} disabled={busy} onClick={onConfirm}>{confirmLabel}</button>
      </div>
    </Dialog>
  );
}
