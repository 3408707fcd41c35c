/** Dashboard: being built (issue 17). */
import { PageHeader, Empty } from '../components/states.tsx';

export function DashboardPage() {
  return <><PageHeader title="Dashboard" /><Empty title="This page is being built." /></>;
}
