/**
 * Settings: the configuration in force (file, environment and defaults merged, as validated at start),
 * one card per section, secrets shown as hidden by the server (GET /api/settings never sends them).
 * Read-only: configuration changes go through the file or the environment and a restart.
 */
import { useState } from 'preact/hooks';
import { useApi } from '../api.ts';
import { Badge, ErrorState, Loading, PageHeader } from '../components/states.tsx';

const HIDDEN = '[hidden]';

function Value({ value }: { value: unknown }) {
  if (value === HIDDEN) return <Badge tone="muted">hidden</Badge>;
  if (value === null || value === undefined) return <span class="muted">not set</span>;
  if (typeof value === 'boolean') return <span>{value ? 'yes' : 'no'}</span>;
  if (Array.isArray(value)) {
    if (value.length === 0) return <span class="muted">none</span>;
    if (value.every((v) => typeof v !== 'object' || v === null)) return <span class="mono">{value.map(String).join(', ')}</span>;
    return <ol class="settings-list">{value.map((v, i) => <li key={i}><Value value={v} /></li>)}</ol>;
  }
  if (typeof value === 'object') return <Properties object={value as Record<string, unknown>} />;
  return <span class="mono">{String(value)}</span>;
}

function Properties({ object }: { object: Record<string, unknown> }) {
  const entries = Object.entries(object);
  if (entries.length === 0) return <span class="muted">empty</span>;
  return <dl class="props">{entries.map(([k, v]) => [<dt key={`${k}-t`}>{k}</dt>, <dd key={`${k}-d`}><Value value={v} /></dd>])}</dl>;
}

export function SettingsPage() {
  const settings = useApi<{ config: Record<string, unknown>; modules: string[] }>('/api/settings');
  const [filter, setFilter] = useState('');
  if (settings.error) return <><PageHeader title="Settings" /><ErrorState error={settings.error} retry={settings.reload} /></>;
  if (!settings.data) return <><PageHeader title="Settings" /><Loading /></>;
  const sections = Object.entries(settings.data.config).filter(([name, v]) => !filter || name.includes(filter.toLowerCase()) || JSON.stringify(v).toLowerCase().includes(filter.toLowerCase()));
  return (
    <>
      <PageHeader title="Settings" subtitle="The configuration in force. Change it in the configuration file or the environment (docs/configuration.md) and restart; secrets are never shown.">
        <div class="field">
          <label for="settings-filter">Find a setting</label>
          <input id="settings-filter" type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder="port, tls, s3…" />
        </div>
      </PageHeader>
      <p class="badges">Modules installed: {settings.data.modules.map((m) => <Badge key={m} tone="info">{m}</Badge>)}</p>
      <div class="grid-wide">
        {sections.map(([name, value]) => (
          <section key={name} class="card" aria-labelledby={`settings-${name}`}>
            <h2 id={`settings-${name}`}>{name}</h2>
            <Value value={value} />
          </section>
        ))}
      </div>
    </>
  );
}
