// One type-aware input for a column's value: a number, date or text field,
// a true/false select for booleans, a textarea for JSON; nullable columns
// (when asked) get a "null" checkbox, cleared by typing a value. `read()` returns the JSON value.
import { h, options } from './dom.js';
import { inputAttributes, kindOf, parseInput, toInputText } from './columns.js';

/**
 * @param {object} column a `meta` column
 * @param {object} [opts] `value` (initial JSON value), `nullable` (offer the null box),
 *   `name` (for the field), `onInput` (called on every change)
 * @returns {{ el: HTMLElement, read(): unknown, isNull(): boolean }}
 */
export function valueInput(column, { value, nullable = false, name = column.name, onInput } = {}) {
  const kind = kindOf(column);
  const field = kind === 'boolean'
    ? h('select', { name }, options([['true', 'true'], ['false', 'false']], value === false ? 'false' : 'true'))
    : kind === 'json'
      ? h('textarea', { name, rows: 3, spellcheck: false, value: toInputText(column, value) })
      : h('input', { name, ...inputAttributes(column), spellcheck: false, value: toInputText(column, value) });
  field.dataset.kind = kind;
  const nullBox = nullable ? h('input', { type: 'checkbox', name: `${name}.null`, checked: value === null }) : null;
  // Typing a value clears the null box; checking it greys the value out.
  const sync = () => el.classList.toggle('is-null', Boolean(nullBox?.checked));
  field.addEventListener('input', () => {
    if (nullBox?.checked) { nullBox.checked = false; sync(); }
    onInput?.();
  });
  nullBox?.addEventListener('change', () => { sync(); onInput?.(); });
  const el = h('span', { className: 'value-input' }, field,
    nullBox && h('label', { className: 'null-box', title: 'set to NULL' }, nullBox, 'null'));
  sync();
  return {
    el,
    field,
    isNull: () => Boolean(nullBox?.checked),
    read: () => (nullBox?.checked ? null : parseInput(column, field.value)),
  };
}
