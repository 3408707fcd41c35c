/** Quarantine: being built (issue 17). */
import { PageHeader, Empty } from '../components/states.tsx';

export function QuarantinePage() {
  return <><PageHeader title="Quarantine" /><Empty title="This page is being built." /></>;
}
