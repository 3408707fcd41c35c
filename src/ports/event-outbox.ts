/**
 * The outbox of events and their deliveries, in the database the changes are made in. The writing side
 * is inside the stores' own transactions (the index's storeInstance writes InstanceStored with the rows);
 * this port is the reading side the dispatcher drives, safe with several nodes on one database.
 */
export interface EventOutbox {
  /**
   * Turns written events into one pending delivery per subscribed handler (`subscribers`: event type ->
   * handler names), up to `limit` events, oldest first; returns how many events it took. An event no
   * handler wants is done at once.
   */
  fanOut(subscribers: ReadonlyMap<string, readonly string[]>, limit: number, now: Date): Promise<number>;
  /**
   * Leases up to `limit` due deliveries to `owner` until `leaseUntil`: for each handler and study only the
   * oldest undelivered event is eligible, so a study's events reach a handler in order and never two at
   * once. Leases of a dead node run out and its deliveries become claimable again.
   */
  claim(owner: string, handlers: readonly string[], limit: number, now: Date, leaseUntil: Date): Promise<EventDelivery[]>;
  /** Extends the leases `owner` still holds; returns the ids it no longer holds. */
  renew(ids: readonly number[], owner: string, leaseUntil: Date): Promise<number[]>;
  /**
   * Records the success of deliveries `owner` ran, in one statement (one commit for a whole batch); returns
   * the ids whose lease had been lost meanwhile (those may run again).
   */
  complete(ids: readonly number[], owner: string, now: Date): Promise<number[]>;
  /** Records a failure: the delivery is retried at `retryAt`, with the error kept for the stuck list. */
  fail(id: number, owner: string, error: string, retryAt: Date, now: Date): Promise<boolean>;
  /** Makes a failing delivery due now (an administrator fixed the cause). */
  retryNow(id: number, now: Date): Promise<boolean>;
  /** Deliveries that failed at least once and are not delivered yet, oldest first. */
  stuck(limit: number, offset: number): Promise<{ total: number; items: StuckDelivery[] }>;
  /** Events not yet fanned out, and deliveries not yet done, per handler. */
  backlog(): Promise<{ unrouted: number; pending: Map<string, number> }>;
  /** Removes delivered history older than `before`; undelivered events are never removed. */
  prune(before: Date): Promise<number>;
}

export interface EventDelivery {
  id: number;
  eventId: number;
  handler: string;
  eventType: string;
  payload: unknown;
  orderingKey: string | null;
  createdAt: string;
  attempts: number;
}

export interface StuckDelivery extends EventDelivery {
  lastError: string | null;
  nextAttemptAt: string;
  lockedBy: string | null;
}
