/**
 * A modal on the browser's own <dialog> (focus trap, Escape, backdrop come with it): confirmation of
 * destructive actions and small forms.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef } from 'preact/hooks';

interface Props {
  open: boolean;
  title: string;
  onClose(): void;
  children: ComponentChildren;
}

export function Dialog({ open, title, onClose, children }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  // One id per dialog: a page with several dialogs must not name them all by the first one's title.
  const titleId = `dialog-title-${useId()}`;
  // `onClose` is for the user closing it (Escape, a form method=dialog): when the page closes it by
  // `open`, its close event must not call back, or it would undo what the page did next (open another).
  const wanted = useRef(open);
  wanted.current = open;
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={() => { if (wanted.current) onClose(); }}>
      <h2 id={titleId}>{title}</h2>
      {open && children}
    </dialog>
  );
}

/** "Are you sure?" with the consequence spelled out; the confirming button says what it does. */
export function ConfirmDialog({ open, title, confirmLabel, cancelLabel = 'Cancel', danger = true, busy, onConfirm, onClose, children }: Props & {
  /** The dismissing button ("Cancel" unless the action itself is a cancel: "Keep the job"). */
  confirmLabel: string; cancelLabel?: string; danger?: boolean; busy?: boolean; onConfirm(): void;
}) {
  return (
    <Dialog open={open} title={title} onClose={onClose}>
      <div class="dialog-body">{children}</div>
      <div class="dialog-actions">
        <button type="button" onClick={onClose}>{cancelLabel}</button>
        <button type="button" class={danger ? 'danger' : 'primary'} disabled={busy} onClick={onConfirm}>{confirmLabel}</button>
      </div>
    </Dialog>
  );
}
