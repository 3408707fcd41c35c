/**
 * The console's pages: one entry per page, in menu order (a section's pages together). Adding a page is a file under pages/ and
 * one line here (docs/ui.md). `action` is the action a principal needs to see the page in the menu;
 * the page's requests are checked by the server whatever the menu shows.
 */
import type { FunctionComponent } from 'preact';
import { DashboardPage } from './pages/dashboard.tsx';
import { StudiesPage } from './pages/studies.tsx';
import { StudyPage } from './pages/study.tsx';
import { PeersPage } from './pages/peers.tsx';
import { JobsPage } from './pages/jobs.tsx';
import { QuarantinePage } from './pages/quarantine.tsx';
import { UsersPage } from './pages/users.tsx';
import { AuditPage } from './pages/audit.tsx';
import { SettingsPage } from './pages/settings.tsx';
import { OrdersPage } from './pages/orders.tsx';
import { OrderPage } from './pages/order.tsx';
import { Hl7MessagesPage } from './pages/hl7-messages.tsx';
import { DosePage } from './pages/dose.tsx';
import { ReadingPage } from './pages/reading.tsx';
import { TurnaroundPage } from './pages/turnaround.tsx';
import { IntegrityPage } from './pages/integrity.tsx';
import { PrefetchPage } from './pages/prefetch.tsx';
import { CorrectionsPage } from './pages/corrections.tsx';
import { RulesPage } from './pages/rules.tsx';
import { AiPage } from './pages/ai.tsx';

export interface ConsolePage {
  /** Under /admin; `:name` segments are passed as props. */
  path: string;
  title: string;
  action: string;
  component: FunctionComponent<any>;
  /** Shown in the menu (detail pages such as one study are not). */
  menu: boolean;
  /** The menu's section (MENU_GROUPS order): the menu wraps between sections, so every page stays in sight at laptop widths. */
  group: MenuGroup;
}

export const MENU_GROUPS = ['Archive', 'Workflow', 'Quality', 'Administration'] as const;
export type MenuGroup = typeof MENU_GROUPS[number];

export const PAGES: ConsolePage[] = [
  { path: '/admin/dashboard', title: 'Dashboard', action: 'admin:config', component: DashboardPage, menu: true, group: 'Archive' },
  { path: '/admin/studies', title: 'Studies', action: 'query', component: StudiesPage, menu: true, group: 'Archive' },
  { path: '/admin/studies/:uid', title: 'Study', action: 'study:read', component: StudyPage, menu: false, group: 'Archive' },
  { path: '/admin/orders', title: 'Orders', action: 'order:read', component: OrdersPage, menu: true, group: 'Workflow' },
  { path: '/admin/orders/:id', title: 'Order', action: 'order:read', component: OrderPage, menu: false, group: 'Workflow' },
  { path: '/admin/reading', title: 'Reading worklist', action: 'reading:read', component: ReadingPage, menu: true, group: 'Workflow' },
  { path: '/admin/turnaround', title: 'Turnaround times', action: 'reading:read', component: TurnaroundPage, menu: true, group: 'Workflow' },
  { path: '/admin/prefetch', title: 'Prefetch', action: 'prefetch:read', component: PrefetchPage, menu: true, group: 'Workflow' },
  { path: '/admin/rules', title: 'Routing rules', action: 'rules:read', component: RulesPage, menu: true, group: 'Workflow' },
  { path: '/admin/ai', title: 'AI nodes', action: 'ai:read', component: AiPage, menu: true, group: 'Workflow' },
  { path: '/admin/dose', title: 'Dose', action: 'dose:read', component: DosePage, menu: true, group: 'Quality' },
  { path: '/admin/integrity', title: 'Integrity', action: 'integrity:read', component: IntegrityPage, menu: true, group: 'Quality' },
  { path: '/admin/corrections', title: 'Corrections', action: 'corrections:write', component: CorrectionsPage, menu: true, group: 'Quality' },
  { path: '/admin/hl7-messages', title: 'HL7 messages', action: 'admin:config', component: Hl7MessagesPage, menu: true, group: 'Administration' },
  { path: '/admin/peers', title: 'Peers', action: 'admin:config', component: PeersPage, menu: true, group: 'Administration' },
  { path: '/admin/jobs', title: 'Jobs', action: 'admin:config', component: JobsPage, menu: true, group: 'Administration' },
  { path: '/admin/quarantine', title: 'Quarantine', action: 'admin:config', component: QuarantinePage, menu: true, group: 'Administration' },
  { path: '/admin/users', title: 'Users and API keys', action: 'admin:users', component: UsersPage, menu: true, group: 'Administration' },
  { path: '/admin/audit', title: 'Audit', action: 'audit:read', component: AuditPage, menu: true, group: 'Administration' },
  { path: '/admin/settings', title: 'Settings', action: 'admin:config', component: SettingsPage, menu: true, group: 'Administration' },
];
