// Column kinds from `meta` type names (PostgreSQL's `int8`, `timestamptz`,
// `jsonb`... and SQLite's declared `INTEGER`, `REAL`, `TEXT`...), and the
// conversions between a kind's input text and its JSON value.

const KINDS = [
  ['integer', /^(int|int2|int4|int8|integer|bigint|smallint|tinyint|mediumint|serial|bigserial|smallserial|oid)$/i],
  ['number', /^(float4|float8|real|double|double precision|numeric|decimal|money)(\b|\()/i],
  ['boolean', /^(bool|boolean)$/i],
  ['timestamp', /^(timestamp|timestamptz|datetime|timestamp with(out)? time zone)/i],
  ['date', /^date$/i],
  ['json', /^jsonb?$/i],
];

/** The kind of a column: integer, number, boolean, timestamp, date, json or text. */
export function kindOf(column) {
  const type = String(column.type ?? '').trim();
  return KINDS.find(([, re]) => re.test(type))?.[0] ?? 'text';
}

/** A column that holds numbers (the chart's y). */
export const isNumeric = (column) => ['integer', 'number'].includes(kindOf(column));

/** A column that holds moments: a date/time type, or (SQLite keeps them as TEXT) a time-like name. */
export function isTemporal(column) {
  const kind = kindOf(column);
  if (kind === 'timestamp' || kind === 'date') return true;
  return kind === 'text' && /(^|_)(ts|time|timestamp|date|datetime|at)$/i.test(column.name);
}

/** The primary key column, or null. */
export const primaryKey = (meta) => meta.columns.find((c) => c.is_primary) ?? null;

/** A key the database fills in itself (an integer primary key): left out of a create when empty. */
export const isGenerated = (column) => column.is_primary && kindOf(column) === 'integer';

/** An input's text for `value` of `column`. */
export function toInputText(column, value) {
  if (value === null || value === undefined) return '';
  switch (kindOf(column)) {
    case 'json': return JSON.stringify(value, null, 1);
    case 'timestamp': return toLocalInput(value);
    case 'date': return String(value).slice(0, 10);
    default: return typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
}

/** `2024-01-01T10:00:00Z` as `datetime-local` text in this browser's time zone. */
function toLocalInput(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().replace('Z', '');
}

/** An input error: shown like a server error, with code `invalid_input`. */
export class InputError extends Error {
  constructor(message) { super(message); this.code = 'invalid_input'; }
}

/** The JSON value of `text` typed for `column` (booleans come as `true`/`false` text). */
export function parseInput(column, text) {
  const fail = (what) => { throw new InputError(`${column.name}: ${JSON.stringify(text)} is not ${what}`); };
  switch (kindOf(column)) {
    case 'integer': {
      if (!/^[-+]?\d+$/.test(text.trim())) fail('an integer');
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : text.trim();
    }
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) fail('a number');
      return n;
    }
    case 'boolean':
      if (!['true', 'false'].includes(text)) fail('true or false');
      return text === 'true';
    case 'timestamp': {
      const date = new Date(text);
      if (Number.isNaN(date.getTime())) fail('a date and time');
      return date.toISOString();
    }
    case 'date':
      if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) fail('a date (YYYY-MM-DD)');
      return text;
    case 'json':
      try { return JSON.parse(text); } catch { return fail('JSON'); }
    default:
      return text;
  }
}

/** Attributes of the `<input>` for `column`'s kind. */
export function inputAttributes(column) {
  switch (kindOf(column)) {
    case 'integer': return { type: 'number', step: '1' };
    case 'number': return { type: 'number', step: 'any' };
    case 'timestamp': return { type: 'datetime-local', step: '0.001' };
    case 'date': return { type: 'date' };
    default: return { type: 'text' };
  }
}
