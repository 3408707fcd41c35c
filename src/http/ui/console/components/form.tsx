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

/**
 * A group of checkboxes (roles, operations) in one form value: the checked values joined by commas, in
 * the order of `options`. Use `listOf(values[name])` to read it back.
 */
export function Choices({ form, name, legend, options, hint }: {
  form: FormState; name: string; legend: string; hint?: string;
  options: { value: string; label: string; hint?: string }[];
}) {
  const id = `field-${name}`;
  const error = form.errors[name];
  const checked = new Set(listOf(form.values[name]));
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ') || undefined;
  const toggle = (value: string) => {
    const next = new Set(checked);
    next.has(value) ? next.delete(value) : next.add(value);
    form.set(name, options.map((o) => o.value).filter((v) => next.has(v)).join(','));
  };
  return (
    <fieldset class={`choices${error ? ' invalid' : ''}`} aria-describedby={described} aria-invalid={error ? true : undefined}>
      <legend>{legend}</legend>
      {hint && <small id={`${id}-hint`} class="muted">{hint}</small>}
      {options.map((o) => (
        <label key={o.value} class="choice">
          <input type="checkbox" name={name} value={o.value} checked={checked.has(o.value)} onChange={() => toggle(o.value)} />
          <span>{o.label}{o.hint && <small class="muted"> {o.hint}</small>}</span>
        </label>
      ))}
      {error && <small id={`${id}-error`} class="field-error">{error}</small>}
    </fieldset>
  );
}

/** The values of a Choices field (or any comma-separated form value). */
export function listOf(value: string | undefined): string[] {
  return (value ?? '').split(',').map((v) => v.trim()).filter(Boolean);
}
