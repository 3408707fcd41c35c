/**
 * Users and API keys (admin:users): local accounts (roles, the DICOM person name a referring clinician
 * is matched by, disabled or not, a new password, deletion) and API keys for machines (roles, route
 * prefixes, expiry; the secret is shown once, at creation, then only its digest is kept; revocation).
 * Every change is a REST call checked by the server like any client's.
 */
import './users.css';
import { useState } from 'preact/hooks';
import { api, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { Choices, Field, FormActions, FormError, listOf, useForm, type Values } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { useSession } from '../session.tsx';
import { formatTime, personName } from '../format.ts';
import { ROLES, type Role } from '../../../../security/types.ts';
import { PERMISSIONS } from '../../../../security/policy.ts';

export interface User {
  id: number;
  username: string;
  displayName: string | null;
  roles: Role[];
  dicomPersonName: string | null;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
  lastLoginAt: string | null;
}

export interface ApiKey {
  keyId: string;
  name: string;
  roles: Role[];
  routePrefixes: string[] | null;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

/** What each role grants, from the server's own policy table (src/security/policy.ts). */
const ROLE_OPTIONS = ROLES.map((role) => {
  const grants = Object.entries(PERMISSIONS[role]);
  const text = role === 'administrator' ? 'everything'
    : grants.length === 0 ? 'nothing yet'
    : grants.map(([action, grant]) => (grant === 'own-studies' ? `${action} (own studies)` : action)).join(', ');
  return { value: role, label: role, hint: `— ${text}` };
});

const PN = /^[^=\\]*(=[^=\\]*){0,2}$/;

function roleBadges(roles: string[]) {
  return roles.length ? <span class="badges">{roles.map((r) => <Badge key={r} tone={r === 'administrator' ? 'warn' : 'info'}>{r}</Badge>)}</span> : <span class="muted">no role</span>;
}

function keyState(k: ApiKey): { tone: 'ok' | 'bad' | 'muted'; text: string } {
  if (k.revokedAt) return { tone: 'muted', text: 'revoked' };
  if (k.expiresAt && Date.parse(k.expiresAt) <= Date.now()) return { tone: 'bad', text: 'expired' };
  return { tone: 'ok', text: 'active' };
}

export function UsersPage() {
  return (
    <>
      <PageHeader title="Users and API keys" subtitle="Who may sign in to Atrium, and the keys machines call it with." />
      <UsersSection />
      <ApiKeysSection />
    </>
  );
}

// ---------------------------------------------------------------------------------------------- users

type UserDialog = { kind: 'create' } | { kind: 'edit' | 'password' | 'delete'; user: User } | null;

function UsersSection() {
  const users = useApi<{ items: User[] }>('/api/users');
  const { me } = useSession();
  const toast = useToast();
  const [dialog, setDialog] = useState<UserDialog>(null);
  const [busy, setBusy] = useState(false);
  const close = () => setDialog(null);
  const isMe = (u: User) => me.kind === 'user' && me.id === String(u.id);

  const remove = async (user: User) => {
    setBusy(true);
    try {
      await api(`/api/users/${user.id}`, { method: 'DELETE' });
      toast.ok(`User ${user.username} deleted`);
      close();
      users.reload();
    } catch (error) {
      toast.error(`User ${user.username} not deleted: ${(error as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  const columns: Column<User>[] = [
    {
      key: 'username', title: 'User', value: (u) => u.username,
      render: (u) => <><strong>{u.username}</strong>{isMe(u) && <> <Badge tone="muted">you</Badge></>}{u.displayName && <div class="muted">{u.displayName}</div>}</>,
    },
    { key: 'roles', title: 'Roles', value: (u) => u.roles.join(', '), render: (u) => roleBadges(u.roles) },
    { key: 'pn', title: 'Person name', value: (u) => u.dicomPersonName, render: (u) => (u.dicomPersonName ? <span title={u.dicomPersonName}>{personName(u.dicomPersonName)}</span> : <span class="muted">—</span>) },
    { key: 'state', title: 'State', value: (u) => (u.disabled ? 1 : 0), render: (u) => (u.disabled ? <Badge tone="bad">disabled</Badge> : <Badge tone="ok">active</Badge>) },
    { key: 'created', title: 'Created', value: (u) => u.createdAt, render: (u) => <span class="nowrap">{formatTime(u.createdAt)}</span> },
    { key: 'login', title: 'Last sign-in', value: (u) => u.lastLoginAt ?? '', render: (u) => (u.lastLoginAt ? <span class="nowrap">{formatTime(u.lastLoginAt)}</span> : <span class="muted">never</span>) },
    {
      key: 'actions', title: 'Actions',
      render: (u) => (
        <div class="row-actions">
          <button type="button" aria-label={`Edit ${u.username}`} onClick={() => setDialog({ kind: 'edit', user: u })}>Edit</button>
          <button type="button" aria-label={`Password of ${u.username}`} onClick={() => setDialog({ kind: 'password', user: u })}>Password</button>
          <button type="button" class="danger" aria-label={`Delete ${u.username}`} disabled={isMe(u)} title={isMe(u) ? 'You cannot delete the account you are signed in with' : undefined}
            onClick={() => setDialog({ kind: 'delete', user: u })}>Delete</button>
        </div>
      ),
    },
  ];

  return (
    <section aria-labelledby="users-heading" class="people-section">
      <div class="section-header">
        <h2 id="users-heading">Users{users.data && <span class="muted"> ({users.data.items.length})</span>}</h2>
        <button type="button" class="primary" onClick={() => setDialog({ kind: 'create' })}>New user…</button>
      </div>
      {users.error && <ErrorState error={users.error} retry={users.reload} />}
      {!users.data && !users.error && <Loading label="Loading users…" />}
      {users.data && (
        <DataTable
          label="Users"
          columns={columns}
          rows={users.data.items}
          rowKey={(u) => String(u.id)}
          empty={<Empty title="No local user yet."><p>People sign in with a user name and password created here (or through the identity provider, when one is configured).</p></Empty>}
        />
      )}
      <Dialog open={dialog?.kind === 'create'} title="New user" onClose={close}>
        <UserForm onClose={close} onDone={(u) => { toast.ok(`User ${u.username} created`); close(); users.reload(); }} />
      </Dialog>
      <Dialog open={dialog?.kind === 'edit'} title={dialog && dialog.kind === 'edit' ? `Edit ${dialog.user.username}` : 'Edit user'} onClose={close}>
        {dialog?.kind === 'edit' && <UserForm user={dialog.user} self={isMe(dialog.user)} onClose={close} onDone={(u) => { toast.ok(`User ${u.username} saved`); close(); users.reload(); }} />}
      </Dialog>
      <Dialog open={dialog?.kind === 'password'} title={dialog && dialog.kind === 'password' ? `New password for ${dialog.user.username}` : 'New password'} onClose={close}>
        {dialog?.kind === 'password' && <PasswordForm user={dialog.user} onClose={close} onDone={() => { toast.ok(`Password of ${dialog.user.username} changed; their sessions were ended`); close(); users.reload(); }} />}
      </Dialog>
      <ConfirmDialog open={dialog?.kind === 'delete'} title="Delete user" confirmLabel={dialog?.kind === 'delete' ? `Delete ${dialog.user.username}` : 'Delete'} busy={busy}
        onConfirm={() => dialog?.kind === 'delete' && remove(dialog.user)} onClose={close}>
        {dialog?.kind === 'delete' && (
          <p><strong>{dialog.user.username}</strong> can no longer sign in and their sessions end. The audit trail keeps what they did under this name. This cannot be undone: to block an account for a while, edit it and disable it instead.</p>
        )}
      </ConfirmDialog>
    </section>
  );
}

const PASSWORD_HINT = 'At least 12 characters (a few words make a good one). The server checks it.';

/** Create (no `user`) or edit a user: roles, names, disabled. */
function UserForm({ user, self = false, onClose, onDone }: { user?: User; self?: boolean; onClose(): void; onDone(user: User): void }) {
  const initial: Values = user
    ? { roles: user.roles.join(','), displayName: user.displayName ?? '', dicomPersonName: user.dicomPersonName ?? '', disabled: user.disabled ? 'true' : '' }
    : { username: '', displayName: '', password: '', confirm: '', roles: '', dicomPersonName: '' };
  const form = useForm(initial, (v) => {
    const roles = listOf(v.roles);
    return {
      username: !user && !v.username.trim() ? 'Enter a user name' : undefined,
      password: !user && !v.password ? 'Enter a password' : undefined,
      confirm: !user && v.password !== v.confirm ? 'The two passwords differ' : undefined,
      roles: roles.length === 0 ? 'Choose at least one role (to block an account, disable it)'
        : self && !roles.includes('administrator') ? 'Keep administrator on your own account, or you lose this page' : undefined,
      dicomPersonName: roles.includes('referring-clinician') && !v.dicomPersonName.trim() ? 'A referring clinician sees the studies referred under this name: enter it'
        : v.dicomPersonName && !PN.test(v.dicomPersonName) ? 'A DICOM person name: components separated by ^ (FAMILY^GIVEN)' : undefined,
      disabled: self && v.disabled ? 'You cannot disable the account you are signed in with' : undefined,
    };
  });
  const save = async (v: Values) => {
    const common = { roles: listOf(v.roles), displayName: v.displayName.trim() || null, dicomPersonName: v.dicomPersonName.trim() || null };
    const saved = user
      ? await api<User>(`/api/users/${user.id}`, { method: 'PATCH', body: { ...common, disabled: v.disabled === 'true' } })
      : await api<User>('/api/users', { method: 'POST', body: { ...common, username: v.username.trim(), password: v.password } });
    onDone(saved);
  };
  return (
    <form class="stack" noValidate onSubmit={form.submit(save)}>
      {!user && <Field form={form} name="username" label="User name" autocomplete="off" required hint="Letters, digits and . _ @ - ; stored in lower case." />}
      <Field form={form} name="displayName" label="Full name" autocomplete="off" hint="Shown in the console and the audit trail." />
      {!user && (
        <div class="form-row">
          <Field form={form} name="password" label="Password" type="password" autocomplete="new-password" required hint={PASSWORD_HINT} />
          <Field form={form} name="confirm" label="Password again" type="password" autocomplete="new-password" required />
        </div>
      )}
      <Choices form={form} name="roles" legend="Roles" options={ROLE_OPTIONS} />
      <Field form={form} name="dicomPersonName" label="DICOM person name" placeholder="DOE^JANE" autocomplete="off"
        hint="For referring clinicians: they see the studies whose Referring Physician's Name is this one." />
      {user && (
        <label class="choice">
          <input type="checkbox" name="disabled" checked={form.values.disabled === 'true'} aria-describedby={form.errors.disabled ? 'field-disabled-error' : undefined}
            onChange={(e) => form.set('disabled', e.currentTarget.checked ? 'true' : '')} />
          <span>Disabled <small class="muted">— cannot sign in; their sessions end now</small></span>
        </label>
      )}
      {form.errors.disabled && <small id="field-disabled-error" class="field-error">{form.errors.disabled}</small>}
      <FormError form={form} />
      <FormActions>
        <button type="button" onClick={onClose}>Cancel</button>
        <button class="primary" disabled={form.busy}>{user ? 'Save' : 'Create user'}</button>
      </FormActions>
    </form>
  );
}

function PasswordForm({ user, onClose, onDone }: { user: User; onClose(): void; onDone(): void }) {
  const form = useForm({ password: '', confirm: '' }, (v) => ({
    password: v.password ? undefined : 'Enter the new password',
    confirm: v.password !== v.confirm ? 'The two passwords differ' : undefined,
  }));
  const save = async (v: Values) => {
    await api(`/api/users/${user.id}/password`, { method: 'PUT', body: { password: v.password } });
    onDone();
  };
  return (
    <form class="stack" noValidate onSubmit={form.submit(save)}>
      <p class="muted">{user.username} is signed out everywhere and signs in with the new password from now on.</p>
      {/* The user name, for password managers (it is not sent). */}
      <input type="text" name="username" value={user.username} autocomplete="username" readOnly hidden />
      <Field form={form} name="password" label="New password" type="password" autocomplete="new-password" required hint={PASSWORD_HINT} />
      <Field form={form} name="confirm" label="New password again" type="password" autocomplete="new-password" required />
      <FormError form={form} />
      <FormActions>
        <button type="button" onClick={onClose}>Cancel</button>
        <button class="primary" disabled={form.busy}>Set the password</button>
      </FormActions>
    </form>
  );
}

// -------------------------------------------------------------------------------------------- API keys

type KeyDialog = { kind: 'create' } | { kind: 'shown'; key: string; apiKey: ApiKey } | { kind: 'revoke'; apiKey: ApiKey } | null;

function ApiKeysSection() {
  const keys = useApi<{ items: ApiKey[] }>('/api/api-keys');
  const { me } = useSession();
  const toast = useToast();
  const [dialog, setDialog] = useState<KeyDialog>(null);
  const [showAll, setShowAll] = useState(false);
  const [busy, setBusy] = useState(false);
  const close = () => setDialog(null);
  const mine = (k: ApiKey) => me.kind === 'api-key' && me.id === k.keyId;
  const all = keys.data?.items ?? [];
  const rows = showAll ? all : all.filter((k) => !k.revokedAt);
  const hidden = all.length - rows.length;

  const revoke = async (k: ApiKey) => {
    setBusy(true);
    try {
      await api(`/api/api-keys/${encodeURIComponent(k.keyId)}`, { method: 'DELETE' });
      toast.ok(`API key ${k.name} revoked`);
      close();
      keys.reload();
    } catch (error) {
      toast.error(`API key ${k.name} not revoked: ${(error as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  const columns: Column<ApiKey>[] = [
    { key: 'name', title: 'Name', value: (k) => k.name, render: (k) => <><strong>{k.name}</strong>{mine(k) && <> <Badge tone="muted">this session</Badge></>}<div class="muted mono">{k.keyId}</div></> },
    { key: 'roles', title: 'Roles', value: (k) => k.roles.join(', '), render: (k) => roleBadges(k.roles) },
    { key: 'routes', title: 'Routes', value: (k) => k.routePrefixes?.join(' ') ?? '', render: (k) => (k.routePrefixes ? <span class="mono">{k.routePrefixes.join(' ')}</span> : <span class="muted">any</span>) },
    { key: 'state', title: 'State', value: (k) => keyState(k).text, render: (k) => { const s = keyState(k); return <Badge tone={s.tone}>{s.text}</Badge>; } },
    { key: 'created', title: 'Created', value: (k) => k.createdAt, render: (k) => <span class="nowrap">{formatTime(k.createdAt)}</span> },
    { key: 'createdBy', title: 'Created by', value: (k) => k.createdBy ?? '', render: (k) => k.createdBy ?? <span class="muted">—</span> },
    { key: 'expires', title: 'Expires', value: (k) => k.expiresAt ?? '9999', render: (k) => (k.revokedAt ? <span class="nowrap">revoked {formatTime(k.revokedAt)}</span> : k.expiresAt ? <span class="nowrap">{formatTime(k.expiresAt)}</span> : <span class="muted">never</span>) },
    { key: 'used', title: 'Last used', value: (k) => k.lastUsedAt ?? '', render: (k) => (k.lastUsedAt ? <span class="nowrap">{formatTime(k.lastUsedAt)}</span> : <span class="muted">never</span>) },
    {
      key: 'actions', title: 'Actions',
      render: (k) => (k.revokedAt ? null : <button type="button" class="danger" aria-label={`Revoke ${k.name}`} onClick={() => setDialog({ kind: 'revoke', apiKey: k })}>Revoke</button>),
    },
  ];

  return (
    <section aria-labelledby="keys-heading" class="people-section">
      <div class="section-header">
        <h2 id="keys-heading">API keys{keys.data && <span class="muted"> ({rows.length})</span>}</h2>
        <label class="choice">
          <input type="checkbox" checked={showAll} onChange={(e) => setShowAll(e.currentTarget.checked)} />
          <span>Show revoked keys{hidden > 0 && !showAll ? ` (${hidden})` : ''}</span>
        </label>
        <button type="button" class="primary" onClick={() => setDialog({ kind: 'create' })}>New API key…</button>
      </div>
      {keys.error && <ErrorState error={keys.error} retry={keys.reload} />}
      {!keys.data && !keys.error && <Loading label="Loading API keys…" />}
      {keys.data && (
        <DataTable
          label="API keys"
          columns={columns}
          rows={rows}
          rowKey={(k) => k.keyId}
          empty={<Empty title={hidden ? 'No active API key.' : 'No API key yet.'}><p>Integrations (an AI node, a RIS, scripts) call Atrium with an API key made here.</p></Empty>}
        />
      )}
      <Dialog open={dialog?.kind === 'create'} title="New API key" onClose={close}>
        <ApiKeyForm onClose={close} onDone={(created) => { toast.ok(`API key ${created.apiKey.name} created`); setDialog({ kind: 'shown', ...created }); keys.reload(); }} />
      </Dialog>
      <Dialog open={dialog?.kind === 'shown'} title="Copy the new API key now" onClose={close}>
        {dialog?.kind === 'shown' && <ShownKey secret={dialog.key} apiKey={dialog.apiKey} onClose={close} />}
      </Dialog>
      <ConfirmDialog open={dialog?.kind === 'revoke'} title="Revoke API key" confirmLabel={dialog?.kind === 'revoke' ? `Revoke ${dialog.apiKey.name}` : 'Revoke'} busy={busy}
        onConfirm={() => dialog?.kind === 'revoke' && revoke(dialog.apiKey)} onClose={close}>
        {dialog?.kind === 'revoke' && (
          <>
            <p>Every request made with <strong>{dialog.apiKey.name}</strong> (<span class="mono">{dialog.apiKey.keyId}</span>) is refused from now on. A revoked key cannot be restored: the integration needs a new key.</p>
            {mine(dialog.apiKey) && <p class="form-error">This console is signed in with this key: it stops working too.</p>}
          </>
        )}
      </ConfirmDialog>
    </section>
  );
}

const EXPIRY = [
  { value: '', label: 'In one year' },
  { value: '30', label: 'In 30 days' },
  { value: '90', label: 'In 90 days' },
  { value: 'date', label: 'On a date…' },
  { value: 'never', label: 'Never' },
];

function ApiKeyForm({ onClose, onDone }: { onClose(): void; onDone(created: { key: string; apiKey: ApiKey }): void }) {
  const form = useForm({ name: '', roles: '', routePrefixes: '', expiry: '', expiresOn: '' }, (v) => ({
    name: v.name.trim() ? undefined : 'Name the key after who uses it (e.g. ai-node-1)',
    roles: listOf(v.roles).length ? undefined : 'Choose at least one role',
    expiresOn: v.expiry === 'date' && !v.expiresOn ? 'Choose the day the key stops working' : undefined,
  }));
  const save = async (v: Values) => {
    const prefixes = v.routePrefixes.split(/[\s,]+/).filter(Boolean);
    const expiresAt = v.expiry === '' ? undefined
      : v.expiry === 'never' ? null
      : v.expiry === 'date' ? new Date(`${v.expiresOn}T23:59:59`).toISOString()
      : new Date(Date.now() + Number(v.expiry) * 86_400_000).toISOString();
    onDone(await api<{ key: string; apiKey: ApiKey }>('/api/api-keys', {
      method: 'POST',
      body: { name: v.name.trim(), roles: listOf(v.roles), routePrefixes: prefixes.length ? prefixes : null, ...(expiresAt !== undefined ? { expiresAt } : {}) },
    }));
  };
  return (
    <form class="stack" noValidate onSubmit={form.submit(save)}>
      <Field form={form} name="name" label="Name" autocomplete="off" required />
      <Choices form={form} name="roles" legend="Roles" options={ROLE_OPTIONS} hint="Give a machine the least it needs: integration pulls and stores studies." />
      <Field form={form} name="routePrefixes" label="Route prefixes" autocomplete="off" placeholder="/dicom-web/"
        hint="Optional: the key works only under these paths (separated by spaces or commas). Empty: any route its roles allow." />
      <div class="expiry">
        <Field form={form} name="expiry" label="Expires" options={EXPIRY} />
        {form.values.expiry === 'date' && <Field form={form} name="expiresOn" label="Expiry date" type="date" required />}
      </div>
      <FormError form={form} />
      <FormActions>
        <button type="button" onClick={onClose}>Cancel</button>
        <button class="primary" disabled={form.busy}>Create the key</button>
      </FormActions>
    </form>
  );
}

/** The secret, this once: Atrium keeps only its SHA-256, so closing this dialog loses it. */
function ShownKey({ secret, apiKey, onClose }: { secret: string; apiKey: ApiKey; onClose(): void }) {
  const toast = useToast();
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied(true);
      toast.ok('API key copied to the clipboard');
    } catch {
      const field = document.getElementById('new-api-key') as HTMLTextAreaElement | null;
      field?.select();
      toast.info('Copying was refused by the browser: the key is selected, copy it with Ctrl+C');
    }
  };
  return (
    <div class="stack shown-key">
      <p class="warning" role="alert"><strong>This is the only time the key is shown.</strong> Atrium stores only a digest of it: copy it now into the integration's secret store. If it is lost, revoke the key and make a new one.</p>
      <label for="new-api-key">API key for {apiKey.name}</label>
      <div class="copy-row">
        <textarea id="new-api-key" class="secret mono" rows={2} readOnly value={secret} onFocus={(e) => e.currentTarget.select()} spellcheck={false} autocomplete="off" />
        <button type="button" class="primary" onClick={copy}>{copied ? 'Copied' : 'Copy'}</button>
      </div>
      <p class="muted">Send it as <span class="mono">Authorization: Bearer &lt;key&gt;</span> (or <span class="mono">X-Api-Key</span>). Roles: {apiKey.roles.join(', ')}; {apiKey.routePrefixes ? `only under ${apiKey.routePrefixes.join(' ')}` : 'any route'}; {apiKey.expiresAt ? `expires ${formatTime(apiKey.expiresAt)}` : 'never expires'}.</p>
      <div class="dialog-actions">
        <button type="button" onClick={onClose}>I have stored the key</button>
      </div>
    </div>
  );
}
