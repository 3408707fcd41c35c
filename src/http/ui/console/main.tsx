/**
 * The operations console at /admin: the shell (menu by role, who is signed in, theme), the router
 * (preact-iso: history URLs under /admin, served index.html by the server) and the pages of pages.ts.
 */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { LocationProvider, Router, Route, useLocation } from 'preact-iso/router';
import { api } from './api.ts';
import { MENU_GROUPS, PAGES, type ConsolePage } from './pages.ts';
import { SessionContext, sessionOf, useSession, type Me, type Session } from './session.tsx';
import { ToastProvider } from './components/toast.tsx';
import { ErrorState, Loading, PageHeader } from './components/states.tsx';
import { applyTheme, storedTheme, type Theme } from './theme.ts';

/** A page (or the console as a whole) the signed-in principal's roles do not open. Not a sign-in matter: they are signed in. */
function NotPermitted({ title, needs }: { title: string; needs: string | null }) {
  const { me } = useSession();
  const who = `${me.name} (${me.roles.join(', ') || 'no role'})`;
  return (
    <>
      <PageHeader title={title} />
      <div class="state error" role="alert">
        <p class="state-title">Not permitted</p>
        <p>{needs ? `${who} may not use this page: it needs ${needs}.` : `${who} may use no page of the console.`}</p>
      </div>
    </>
  );
}

function Guarded({ page, ...props }: { page: ConsolePage } & Record<string, unknown>) {
  const { can } = useSession();
  useEffect(() => { document.title = `${page.title} · Atrium`; }, [page.title]);
  if (!can(page.action)) return <NotPermitted title={page.title} needs={page.action} />;
  const Component = page.component;
  return <Component {...props} />;
}

// One component per page, made once: a new function per render would remount the page.
const ROUTES = PAGES.map((page) => ({ page, Component: (props: Record<string, unknown>) => <Guarded page={page} {...props} /> }));

function Home() {
  const { route } = useLocation();
  const { can } = useSession();
  const first = PAGES.find((p) => p.menu && can(p.action));
  useEffect(() => { if (first) route(first.path, true); }, []);
  return first ? <Loading /> : <NotPermitted title="Atrium" needs={null} />;
}

function NotFound() {
  return <><PageHeader title="Not found" /><p>No page at this address. <a href="/admin">Back to the start</a>.</p></>;
}

function Menu() {
  const { can } = useSession();
  const { path } = useLocation();
  return (
    <nav class="menu" aria-label="Main">
      <ul>
        {MENU_GROUPS.map((group) => {
          const pages = PAGES.filter((p) => p.menu && p.group === group && can(p.action));
          // The viewer link is everyone's, so Archive is always there.
          if (pages.length === 0 && group !== 'Archive') return null;
          return (
            <li key={group} class="section" data-section={group}>
              <ul aria-label={group}>
                {pages.map((p) => {
                  const current = path === p.path || path.startsWith(`${p.path}/`);
                  return <li key={p.path}><a href={p.path} aria-current={current ? 'page' : undefined}>{p.title}</a></li>;
                })}
                {group === 'Archive' ? <li><a href="/" target="_self">Viewer</a></li> : null}
              </ul>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}

function UserBox() {
  const { me } = useSession();
  const [theme, setTheme] = useState<Theme>(storedTheme());
  const signOut = async () => {
    await api('/api/logout', { method: 'POST' }).catch(() => undefined);
    location.href = '/login?next=/admin';
  };
  return (
    <div class="userbox">
      <label class="theme">
        <span class="visually-hidden">Theme</span>
        <select value={theme} onChange={(e) => { const t = e.currentTarget.value as Theme; setTheme(t); applyTheme(t); }}>
          <option value="system">System theme</option>
          <option value="light">Light</option>
          <option value="dark">Dark</option>
        </select>
      </label>
      <span class="who" title={me.roles.join(', ')}>{me.name}</span>
      {me.authMethod === 'session' && <button type="button" onClick={signOut}>Sign out</button>}
    </div>
  );
}

function Shell({ session }: { session: Session }) {
  return (
    <SessionContext.Provider value={session}>
      <ToastProvider>
        <LocationProvider>
          <a class="skip" href="#main">Skip to content</a>
          <header class="topbar">
            <a class="brand" href="/admin">Atrium</a>
            <Menu />
            <UserBox />
          </header>
          <main id="main" tabIndex={-1}>
            <Router>
              <Route path="/admin" component={Home} />
              {ROUTES.map(({ page, Component }) => <Route key={page.path} path={page.path} component={Component} />)}
              <Route default component={NotFound} />
            </Router>
          </main>
        </LocationProvider>
      </ToastProvider>
    </SessionContext.Provider>
  );
}

function App() {
  const [state, setState] = useState<{ session?: Session; error?: Error }>({});
  useEffect(() => { api<Me>('/api/me').then((me) => setState({ session: sessionOf(me) }), (error) => setState({ error })); }, []);
  if (state.error) return <main id="main"><ErrorState error={state.error} retry={() => location.reload()} /></main>;
  if (!state.session) return <Loading />;
  return <Shell session={state.session} />;
}

applyTheme(storedTheme());
render(<App />, document.getElementById('app')!);
