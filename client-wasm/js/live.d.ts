import type {
  SpecClient, SpecConnectOptions, LiveQueryOptions, LiveQueryHandle, LiveChange, Row, SpecError,
  ReadOptions, ReadResult, EntityOptions, SpecSubscribeOptions, Notification, SpecClientEvents,
} from './mqttspec_wasm.js';

/** Options of `connect`: SpecClient.connect's, plus `shared`. */
export interface LiveConnectOptions extends SpecConnectOptions {
  /** One connection for every tab of this origin (same url and options), run in a
   * SharedWorker; identical live queries are served once. Falls back to a connection
   * in this tab where SharedWorker is missing. Default false. */
  shared?: boolean;
}

/** A subscription of a shared client (same use as SpecClient's SubscriptionHandle). */
export interface SharedSubscription extends AsyncIterable<Notification> {
  /** The server's id when subscribed (a shared handle keeps it; the worker's SpecClient
   * subscribes again under a new id after a reconnect and keeps delivering). */
  readonly subscriptionId: string | undefined;
  unsubscribe(): Promise<void>;
}

/** What `connect` returns: a SpecClient, or with `shared: true` a client with the same API
 * whose connection lives in a SharedWorker. */
export interface LiveClient {
  read<T = unknown>(entity: string, options?: ReadOptions): Promise<ReadResult<T>>;
  create(entity: string, data: Row, options?: EntityOptions): Promise<ReadResult<Row>>;
  update(entity: string, recordId: string | number, data: Row, options?: EntityOptions): Promise<ReadResult<Row>>;
  delete(entity: string, recordId: string | number, options?: EntityOptions): Promise<ReadResult<unknown>>;
  meta(entity: string, options?: EntityOptions): Promise<ReadResult<unknown>>;
  subscribe(entity: string, options?: SpecSubscribeOptions, onNotification?: (n: Notification) => void): Promise<SharedSubscription | import('./mqttspec_wasm.js').SubscriptionHandle>;
  liveQuery(entity: string, options: LiveQueryOptions, onChange: (rows: Row[], change: LiveChange) => void): Promise<Pick<LiveQueryHandle, 'rows' | 'close' | 'subscriptionId'>>;
  on<K extends keyof SpecClientEvents>(event: K, listener: SpecClientEvents[K]): LiveClient;
  end(): Promise<void>;
  readonly connected: boolean;
  readonly clientId: string;
}

/** Start the wasm module and connect (or join the tabs' shared connection with `shared: true`). */
export function connect(url: string, options?: LiveConnectOptions): Promise<LiveClient>;

export type LiveStatus = 'connecting' | 'live' | 'stale' | 'error';

/** What a live store holds. The same object is returned until something changes. */
export interface LiveSnapshot<T = Row> {
  /** The rows in the query's order (empty while connecting). */
  readonly rows: readonly T[];
  /** connecting: no rows yet; live: rows current; stale: rows kept but the connection is down
   * or reading again failed (retried); error: the query could not start. */
  readonly status: LiveStatus;
  /** Why the status is error or stale, when a request failed. */
  readonly error: SpecError | null;
}

/** A live query as an external store (React useSyncExternalStore, Svelte `$store`, Vue refs). */
export interface LiveStore<T = Row> {
  /** Calls `listener` with the snapshot now and after every change; returns the unsubscribe
   * function. The live query starts with the first listener and closes after the last leaves. */
  subscribe(listener: (snapshot: LiveSnapshot<T>) => void): () => void;
  getSnapshot(): LiveSnapshot<T>;
  /** Close the live query now and forget every listener. */
  close(): Promise<void>;
}

/** Keep `entity`'s rows matching `options` current in a store. */
export function liveStore<T = Row>(client: SpecClient | LiveClient, entity: string, options?: LiveQueryOptions): LiveStore<T>;

/** The snapshot of a store that has no rows yet. */
export const CONNECTING: LiveSnapshot<never>;

/** Deterministic JSON (object keys sorted, functions left out): equal queries have equal keys. */
export function stableKey(value: unknown): string;
