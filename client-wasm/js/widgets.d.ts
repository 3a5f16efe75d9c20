import type { SpecClient, LiveQueryOptions, Row } from './mqttspec_wasm.js';

export interface LiveTableOptions extends LiveQueryOptions {
  /** Columns to show, in order (default: the columns of the first row). */
  columns?: string[];
  /** Cell text for a value (default: the value as text, objects as JSON). */
  format?: (column: string, value: unknown, row: Row) => string;
}

export interface LiveTable {
  /** Replace the filters / sort / limit; the table reloads. */
  setQuery(query: LiveQueryOptions): Promise<void>;
  /** The rows shown now. */
  rows(): Row[];
  /** Stop following the data. */
  close(): Promise<void>;
}

/** Show a live query of `entity` as a table inside `element`; clicking a header sorts by it. */
export function mountLiveTable(element: HTMLElement, client: SpecClient, entity: string, options?: LiveTableOptions): Promise<LiveTable>;
