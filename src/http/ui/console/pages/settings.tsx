/** Settings: being built (issue 17). */
import { PageHeader, Empty } from '../components/states.tsx';

export function SettingsPage() {
  return <><PageHeader title="Settings" /><Empty title="This page is being built." /></>;
}
