/** Audit: being built (issue 17). */
import { PageHeader, Empty } from '../components/states.tsx';

export function AuditPage() {
  return <><PageHeader title="Audit" /><Empty title="This page is being built." /></>;
}
