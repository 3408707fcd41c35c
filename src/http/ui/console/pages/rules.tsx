/**
 * Routing rules (src/workflow/, docs/workflow.md): the rules with their trigger, conditions, actions and
 * version; create and edit in a form checked in the browser by the server's own validation (rule.ts) and
 * showing the server's refusal field by field; disable, enable, delete (confirmed); and a dry-run of a stored
 * study: which rules it would trigger, what they would do, and why the others would not.
 */
import { useState } from 'preact/hooks';
import { api, ApiError, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { Field, FormActions, FormError, useForm, type Values } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { formatTime } from '../format.ts';
import { validateRule, type RuleDefinition, type RuleProblem } from '../../../../workflow/rule.ts';

interface RuleItem { id: number; name: string; version: number; enabled: boolean; definition: RuleDefinition; updatedAt: string }

const LIST_FIELDS = ['modality', 'sourceAe', 'source', 'studyDescription', 'procedureCode', 'bodyPart', 'priority', 'station'] as const;
const LABELS: Record<(typeof LIST_FIELDS)[number], string> = {
  modality: 'Modality', sourceAe: 'Sending AE title', source: 'Source (transport)', studyDescription: 'Study description', procedureCode: 'Procedure code',
  bodyPart: 'Body part', priority: 'Order priority', station: 'Station name',
};

function summary(d: RuleDefinition): string {
  const parts: string[] = [];
  for (const key of LIST_FIELDS) if (d.conditions[key]?.length) parts.push(`${LABELS[key].toLowerCase()} ${d.conditions[key]!.join(' or ')}`);
  if (d.conditions.timeOfDay) parts.push(`between ${d.conditions.timeOfDay.from} and ${d.conditions.timeOfDay.to}`);
  return parts.length ? parts.join('; ') : 'everything';
}

function actionText(a: RuleDefinition['actions'][number]): string {
  if (a.type === 'ai') return `ai ${a.node}`;
  return a.type === 'dicom' ? `dicom ${a.destination}${a.transferSyntaxes?.length ? ` ${a.transferSyntaxes.join(',')}` : ''}` : `dicomweb ${a.destination}`;
}

export function RulesPage() {
  const list = useApi<{ items: RuleItem[] }>('/api/workflow/rules');
  const toast = useToast();
  const [editing, setEditing] = useState<RuleItem | 'new' | null>(null);
  const [deleting, setDeleting] = useState<RuleItem | null>(null);
  const [busy, setBusy] = useState(false);

  const toggle = async (rule: RuleItem) => {
    try {
      await api(`/api/workflow/rules/${rule.id}/${rule.enabled ? 'disable' : 'enable'}?version=${rule.version}`, { method: 'POST' });
      toast.ok(`Rule "${rule.name}" ${rule.enabled ? 'disabled' : 'enabled'}`);
    } catch (error) {
      toast.error(`Rule "${rule.name}" not changed: ${(error as Error).message}`);
    }
    list.reload();
  };
  const remove = async () => {
    if (!deleting) return;
    setBusy(true);
    try {
      await api(`/api/workflow/rules/${deleting.id}?version=${deleting.version}`, { method: 'DELETE' });
      toast.ok(`Rule "${deleting.name}" deleted`);
    } catch (error) {
      toast.error(`Rule "${deleting.name}" not deleted: ${(error as Error).message}`);
    } finally {
      setBusy(false);
      setDeleting(null);
      list.reload();
    }
  };

  const columns: Column<RuleItem>[] = [
    { key: 'name', title: 'Rule', value: (r) => r.name, render: (r) => <><strong>{r.name}</strong>{r.definition.description && <div class="muted">{r.definition.description}</div>}</> },
    { key: 'trigger', title: 'On', value: (r) => r.definition.trigger, render: (r) => r.definition.trigger === 'instance' ? 'each instance' : 'study stable' },
    { key: 'when', title: 'When', value: (r) => summary(r.definition) },
    { key: 'actions', title: 'Then', value: (r) => r.definition.actions.map(actionText).join('; '),
      render: (r) => <ul class="plain">{r.definition.actions.map((a, i) => <li key={i}>{a.type === 'dicom' ? 'C-STORE to ' : a.type === 'ai' ? 'AI node ' : 'STOW-RS to '}<span class="mono">{a.type === 'ai' ? a.node : a.destination}</span>
        {a.type === 'dicom' && a.transferSyntaxes?.length ? <span class="muted"> (transcoded to {a.transferSyntaxes.join(', ')} if needed)</span> : null}</li>)}</ul> },
    { key: 'version', title: 'Version', value: (r) => r.version, render: (r) => <span title={`changed ${formatTime(r.updatedAt)}`}>v{r.version}</span> },
    { key: 'state', title: 'State', value: (r) => (r.enabled ? 'enabled' : 'disabled'), render: (r) => r.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="muted">disabled</Badge> },
    {
      key: 'act', title: 'Actions',
      render: (r) => (
        <div class="row-actions">
          <button type="button" aria-label={`Edit ${r.name}`} onClick={() => setEditing(r)}>Edit…</button>
          <button type="button" aria-label={`${r.enabled ? 'Disable' : 'Enable'} ${r.name}`} onClick={() => toggle(r)}>{r.enabled ? 'Disable' : 'Enable'}</button>
          <button type="button" class="danger" aria-label={`Delete ${r.name}`} onClick={() => setDeleting(r)}>Delete…</button>
        </div>
      ),
    },
  ];

  return (
    <>
      <PageHeader title="Routing rules" subtitle="What Atrium forwards where, as each instance arrives or once a study is stable. Every change is a new version, audited.">
        <button type="button" class="primary" onClick={() => setEditing('new')}>New rule…</button>
      </PageHeader>
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading label="Loading the rules…" />}
      {list.data && (
        <DataTable label="Routing rules" columns={columns} rows={list.data.items} rowKey={(r) => String(r.id)}
          empty={<Empty title="No routing rule yet."><p>Studies are archived and nothing is forwarded.</p></Empty>} />
      )}
      <DryRun />
      <Dialog open={editing !== null} title={editing === 'new' ? 'New routing rule' : `Edit rule ${editing?.name ?? ''}`} onClose={() => setEditing(null)}>
        {editing !== null && <RuleForm key={editing === 'new' ? 'new' : `${editing.id}:${editing.version}`} rule={editing}
          onSaved={(saved, created) => { setEditing(null); toast.ok(`Rule "${saved.name}" ${created ? 'created' : `saved as version ${saved.version}`}`); list.reload(); }} />}
      </Dialog>
      <ConfirmDialog open={deleting !== null} title={`Delete rule ${deleting?.name ?? ''}`} confirmLabel="Delete the rule" busy={busy} onConfirm={remove} onClose={() => setDeleting(null)}>
        <p>The rule stops matching at once; its versions stay readable through the API, and jobs it queued run on.</p>
      </ConfirmDialog>
    </>
  );
}

const EMPTY: Values = { name: '', description: '', trigger: 'study-stable', timeFrom: '', timeTo: '', actions: '', ...Object.fromEntries(LIST_FIELDS.map((k) => [k, ''])) };

function valuesOf(rule: RuleItem): Values {
  const d = rule.definition;
  return {
    name: d.name, description: d.description ?? '', trigger: d.trigger, timeFrom: d.conditions.timeOfDay?.from ?? '', timeTo: d.conditions.timeOfDay?.to ?? '',
    actions: d.actions.map(actionText).join('; '), ...Object.fromEntries(LIST_FIELDS.map((k) => [k, (d.conditions[k] ?? []).join(', ')])),
  };
}

const split = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

/** The form's values as the rule the API takes (the actions field: `dicom AE [ts,ts]; dicomweb name`). */
function ruleOf(v: Values): unknown {
  const conditions: Record<string, unknown> = {};
  for (const key of LIST_FIELDS) if (split(v[key]).length) conditions[key] = split(v[key]);
  if (v.timeFrom.trim() || v.timeTo.trim()) conditions.timeOfDay = { from: v.timeFrom.trim(), to: v.timeTo.trim() };
  const actions = v.actions.split(';').map((s) => s.trim()).filter(Boolean).map((text) => {
    const [type, destination, syntaxes] = text.split(/\s+/);
    if (type === 'ai') return { type, node: text.slice(2).trim() };
    return { type, destination: destination ?? '', ...(syntaxes ? { transferSyntaxes: split(syntaxes) } : {}) };
  });
  return { name: v.name, ...(v.description.trim() ? { description: v.description } : {}), trigger: v.trigger, conditions, actions };
}

/** A problem's path (`conditions.modality.0`, `actions.1.destination`) as the form field it belongs to. */
function fieldOf(path: string): string {
  const [first, second] = path.split('.');
  if (first === 'conditions') return second === 'timeOfDay' ? 'timeFrom' : second ?? 'name';
  return first === 'actions' ? 'actions' : first || 'name';
}

function messages(problems: RuleProblem[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of problems) {
    const field = fieldOf(p.path);
    out[field] = out[field] ? `${out[field]}; ${p.message}` : p.message;
  }
  return out;
}

function RuleForm({ rule, onSaved }: { rule: RuleItem | 'new'; onSaved(rule: RuleItem, created: boolean): void }) {
  const creating = rule === 'new';
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const form = useForm(creating ? EMPTY : valuesOf(rule), (v) => messages(validateRule(ruleOf(v)).problems));
  const errors = { ...serverErrors, ...form.errors };
  const shown = { ...form, errors };
  const save = async (v: Values) => {
    setServerErrors({});
    try {
      const saved = creating
        ? await api<RuleItem>('/api/workflow/rules', { method: 'POST', body: ruleOf(v) })
        : await api<RuleItem>(`/api/workflow/rules/${rule.id}?version=${rule.version}`, { method: 'PUT', body: ruleOf(v) });
      onSaved(saved, creating);
    } catch (error) {
      const problems = error instanceof ApiError ? (error.problem.problems as RuleProblem[] | undefined) : undefined;
      if (problems?.length) setServerErrors(messages(problems));
      throw error;
    }
  };
  return (
    <form class="stack" noValidate onSubmit={form.submit(save)} aria-label={creating ? 'New rule' : `Rule ${rule.name}`}>
      <Field form={shown} name="name" label="Name" required autocomplete="off" />
      <Field form={shown} name="description" label="Description" autocomplete="off" />
      <Field form={shown} name="trigger" label="Runs" options={[{ value: 'study-stable', label: 'once the study is stable' }, { value: 'instance', label: 'on each instance stored' }]} />
      <fieldset class="stack">
        <legend>When (every condition given must hold; a list is any of; * and ? are wildcards)</legend>
        {LIST_FIELDS.map((key) => <Field key={key} form={shown} name={key} label={LABELS[key]} autocomplete="off"
          hint={key === 'priority' ? 'STAT, ASAP, URGENT, ROUTINE: of the order matched by accession number' : 'comma-separated'} />)}
        <div class="peer-address">
          <Field form={shown} name="timeFrom" label="From (HH:MM)" autocomplete="off" size={5} />
          <Field form={shown} name="timeTo" label="To (HH:MM)" autocomplete="off" size={5} />
        </div>
      </fieldset>
      <Field form={shown} name="actions" label="Then" required autocomplete="off"
        hint="dicom <peer AE title> [transfer syntaxes to transcode into]; dicomweb <destination name>; ai <AI node name> — separated by ;" placeholder="dicom PACS2; dicomweb cloud" />
      <FormError form={form} />
      <FormActions><button type="submit" class="primary" disabled={form.busy}>{creating ? 'Create the rule' : 'Save as a new version'}</button></FormActions>
    </form>
  );
}

interface DryRunResult {
  studyInstanceUid: string;
  facts: Record<string, unknown>;
  rules: { rule: { id: number; name: string; version: number }; trigger: string; matched: boolean; unmet: { condition: string; detail: string }[];
    matchedInstances: number | null; actions: { description: string; warning?: string }[] }[];
  triggered: { ruleId: number; jobId: number }[];
}

function DryRun() {
  const [study, setStudy] = useState('');
  const [result, setResult] = useState<DryRunResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    if (!/^[0-9.]+$/.test(study.trim())) { setError('Give a Study Instance UID (digits and dots)'); return; }
    try {
      setResult(await api<DryRunResult>(`/api/workflow/dry-run/${encodeURIComponent(study.trim())}`));
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <section class="card" aria-labelledby="dry-run-heading">
      <h2 id="dry-run-heading">Dry-run a study</h2>
      <form class="peer-address" onSubmit={run} aria-label="Dry-run">
        <div class={`field${error ? ' invalid' : ''}`}>
          <label for="dry-run-study">Study Instance UID</label>
          <input id="dry-run-study" value={study} onInput={(e) => setStudy(e.currentTarget.value)} autocomplete="off" size={60}
            aria-invalid={error ? true : undefined} aria-describedby={error ? 'dry-run-error' : undefined} />
          {error && <small id="dry-run-error" class="field-error">{error}</small>}
        </div>
        <FormActions><button type="submit">Dry-run</button></FormActions>
      </form>
      {result && (
        <div role="region" aria-label="Dry-run result">
          <p class="muted">Facts: modalities {String((result.facts.modalities as string[]).join(', ') || '—')}, source {String(result.facts.source ?? '—')},
            description {String(result.facts.studyDescription ?? '—')}, priority {String(result.facts.priority ?? 'no order')}.</p>
          {result.rules.length === 0 ? <p>No enabled rule.</p> : (
            <table class="table" aria-label="Rules against this study">
              <thead><tr><th scope="col">Rule</th><th scope="col">Would</th><th scope="col">Because</th><th scope="col">Queued so far</th></tr></thead>
              <tbody>
                {result.rules.map((r) => (
                  <tr key={r.rule.id}>
                    <td>{r.rule.name} <span class="muted">v{r.rule.version}</span></td>
                    <td>{r.matched ? <><Badge tone="ok">trigger</Badge><ul class="plain">{r.actions.map((a, i) => <li key={i}>{a.description}{a.warning && <> <Badge tone="warn">{a.warning}</Badge></>}</li>)}</ul></>
                      : <Badge tone="muted">not trigger</Badge>}</td>
                    <td>{r.matched ? (r.matchedInstances !== null ? `${r.matchedInstances} instance(s) match` : 'every condition holds') : r.unmet.map((u) => u.detail).join('; ')}</td>
                    <td>{result.triggered.filter((t) => t.ruleId === r.rule.id).map((t) => <a key={t.jobId} href={`/admin/jobs?job=${t.jobId}`}>job {t.jobId} </a>)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </section>
  );
}
