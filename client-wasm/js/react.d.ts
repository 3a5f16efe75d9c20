import type { ReactNode, ReactElement } from 'react';
import type { LiveQueryOptions, Row, SpecClient } from './mqttspec_wasm.js';
import type { LiveClient, LiveConnectOptions, LiveSnapshot } from './live.js';

export type { LiveSnapshot, LiveStatus, LiveClient, LiveConnectOptions } from './live.js';

export interface SpecProviderProps {
  /** Broker URL (ws:// or wss://) to connect to, unless `client` is given. */
  url?: string;
  /** Options of `connect` (`shared: true` for one connection across tabs). Compared by value. */
  options?: LiveConnectOptions;
  /** A client you connected yourself (the provider does not end it). */
  client?: SpecClient | LiveClient;
  children?: ReactNode;
}

/** Makes a SpecClient available to `useSpec` and `useLiveQuery` below it. */
export function SpecProvider(props: SpecProviderProps): ReactElement;

/** The provider's client, or null while it connects (or if connecting failed). */
export function useSpec(): SpecClient | LiveClient | null;

/** Rows of a live query and its status; restarts when `entity` or `options` change by value. */
export function useLiveQuery<T = Row>(entity: string, options?: LiveQueryOptions): LiveSnapshot<T>;
