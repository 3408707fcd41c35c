/** Users: being built (issue 17). */
import { PageHeader, Empty } from '../components/states.tsx';

export function UsersPage() {
  return <><PageHeader title="Users" /><Empty title="This page is being built." /></>;
}
