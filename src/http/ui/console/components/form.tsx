/**
 * Forms: labelled fields with their validation message tied to the input (aria-invalid,
 * aria-describedby), checked in the browser before a request and showing the server's refusal (its
 * problem `detail`) when it comes back.
 */
import type { ComponentChildren, JSX } from 'preact';
import { useState } from 'preact/hooks';

export type Values = Record<string, string>;
/** Returns a message per invalid field; an empty object when the values may be sent. */
export type Validate = (values: Values) => Partial<Record<string, string>>;

export interface FormState {
  values: Values;
  errors: Partial<Record<string, string>>;
  formError: string | null;
  busy: boolean;
  set(name: string, value: string): void;
  /** Validates, then runs `action`; a thrown error becomes the form's message. */
  submit(action: (values: Values) => Promise<void>): (e: Event) => Promise<void>;
  reset(values?: Values): void;
}

export function useForm(initial: Values, validate: Validate = () => ({})): FormState {
  const [values, setValues] = useState(initial);
  const [errors, setErrors] = useState<Partial<Record<string, string>>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return {
    values, errors, formError, busy,
    set: (name, value) => {
      setValues((v) => ({ ...v, [name]: value }));
      if (errors[name]) setErrors((e) => ({ ...e, [name]: undefined }));
    },
    submit: (action) => async (e) => {
      e.preventDefault();
      const found = validate(values);
      setErrors(found);
      setFormError(null);
      if (Object.values(found).some(Boolean)) return;
      setBusy(true);
      try {
        await action(values);
      } catch (error) {
        setFormError(error instanceof Error ? error.message : String(error));
      } finally {
        setBusy(false);
      }
    },
    reset: (next = initial) => { setValues(next); setErrors({}); setFormError(null); },
  };
}

interface FieldProps {
  form: FormState;
  name: string;
  label: string;
  hint?: string;
  type?: string;
  placeholder?: string;
  autocomplete?: string;
  required?: boolean;
  options?: { value: string; label: string }[];
  size?: number;
  /** Shown but not editable (the key of a record being edited). */
  disabled?: boolean;
}

export function Field({ form, name, label, hint, type = 'text', placeholder, autocomplete, required, options, size, disabled }: FieldProps) {
  const id = `field-${name}`;
  const error = form.errors[name];
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ') || undefined;
  const common = {
    id, name, required, disabled, 'aria-invalid': error ? true : undefined, 'aria-describedby': described,
    value: form.values[name] ?? '',
    onInput: (e: JSX.TargetedEvent<HTMLInputElement | HTMLSelectElement>) => form.set(name, e.currentTarget.value),
  };
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}{required && <span aria-hidden="true"> *</span>}</label>
      {options ? (
        <select {...common}>{options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}</select>
      ) : (
        <input {...common} type={type} placeholder={placeholder} autocomplete={autocomplete} size={size} />
      )}
      {hint && <small id={`${id}-hint`} class="muted">{hint}</small>}
      {error && <small id={`${id}-error`} class="field-error">{error}</small>}
    </div>
  );
}

export function FormError({ form }: { form: FormState }) {
  return form.formError ? <p class="form-error" role="alert">{form.formError}</p> : null;
}

export function FormActions({ children }: { children: ComponentChildren }) {
  return <div class="form-actions">{children}</div>;
}
