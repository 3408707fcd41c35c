/** Jobs: being built (issue 17). */
import { PageHeader, Empty } from '../components/states.tsx';

export function JobsPage() {
  return <><PageHeader title="Jobs" /><Empty title="This page is being built." /></>;
}
