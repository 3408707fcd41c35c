/** Peers: being built (issue 17). */
import { PageHeader, Empty } from '../components/states.tsx';

export function PeersPage() {
  return <><PageHeader title="Peers" /><Empty title="This page is being built." /></>;
}
