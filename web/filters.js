// The filter builder: rows of [AND/OR] [column] [operator] [operand], every
// operator of the protocol (mqttspec_proto::FilterOp) with the operand it
// needs, read as the `filters` option of a query.
import { h, options } from './dom.js';
import { InputError, parseInput } from './columns.js';
import { valueInput } from './inputs.js';

/** Every operator, in wire order, with its operand: one value, two (a range), a list, a pattern, or none. */
export const OPERATORS = [
  ['eq', '=', 'one'], ['neq', '≠', 'one'], ['gt', '>', 'one'], ['gte', '≥', 'one'],
  ['lt', '<', 'one'], ['lte', '≤', 'one'],
  ['like', 'like', 'pattern'], ['ilike', 'ilike', 'pattern'],
  ['in', 'in', 'list'], ['not_in', 'not in', 'list'],
  ['is_null', 'is null', 'none'], ['is_not_null', 'is not null', 'none'],
  ['between', 'between', 'range'],
].map(([op, label, operand]) => ({ op, label, operand }));

const operandOf = (op) => OPERATORS.find((o) => o.op === op)?.operand ?? 'one';

/** The operand inputs of `operator` on `column`; `read()` gives the filter's `value`. */
function operandInputs(column, operator) {
  switch (operandOf(operator)) {
    case 'none':
      return { el: h('span', { className: 'hint' }, '(no value)'), read: () => null };
    case 'pattern': {
      const field = h('input', { name: 'pattern', placeholder: '% any run, _ one char, \\ escapes', spellcheck: false });
      return { el: field, read: () => field.value };
    }
    case 'list': {
      const field = h('input', { name: 'list', placeholder: 'a, b, c', spellcheck: false });
      const read = () => field.value.split(',').map((t) => t.trim()).filter((t) => t !== '')
        .map((t) => parseInput(column, t));
      return { el: field, read };
    }
    case 'range': {
      const low = valueInput(column, { name: 'low' });
      const high = valueInput(column, { name: 'high' });
      return { el: h('span', { className: 'range' }, low.el, 'and', high.el), read: () => [low.read(), high.read()] };
    }
    default: {
      const one = valueInput(column, { name: 'value' });
      return { el: one.el, read: one.read };
    }
  }
}

/**
 * A filter builder for the columns of `meta` inside `element`.
 * @param {HTMLElement} element replaced by the builder
 * @param {object} meta `{schema, table, columns}`
 * @param {(filters: object[]) => void} onApply called with the filters on "Apply"
 */
export function mountFilters(element, meta, onApply) {
  const rows = [];
  const list = h('div', { className: 'filter-rows' });

  function addRow() {
    const logic = h('select', { name: 'logic' }, options([['AND', 'and'], ['OR', 'or']], 'AND'));
    const column = h('select', { name: 'column' }, options(meta.columns.map((c) => c.name)));
    const operator = h('select', { name: 'operator' }, options(OPERATORS.map((o) => [o.op, o.label]), 'eq'));
    const slot = h('span', { className: 'operand' });
    const row = { el: null, logic, column, operator, operand: null };
    const refresh = () => {
      const col = meta.columns.find((c) => c.name === column.value);
      row.operand = operandInputs(col, operator.value);
      slot.replaceChildren(row.operand.el);
    };
    column.addEventListener('change', refresh);
    operator.addEventListener('change', refresh);
    const remove = h('button', { type: 'button', className: 'ghost', title: 'remove', onclick: () => {
      rows.splice(rows.indexOf(row), 1);
      row.el.remove();
      renumber();
    } }, '×');
    row.el = h('div', { className: 'filter-row' }, logic, column, operator, slot, remove);
    refresh();
    rows.push(row);
    list.append(row.el);
    renumber();
  }

  /** The first row has no AND/OR. */
  function renumber() {
    rows.forEach((r, i) => { r.logic.hidden = i === 0; });
  }

  /** The filters as the protocol wants them; throws an InputError on a bad operand. */
  function read() {
    return rows.map((r, i) => {
      const filter = { column: r.column.value, operator: r.operator.value };
      if (operandOf(filter.operator) !== 'none') filter.value = r.operand.read();
      if (operandOf(filter.operator) === 'list' && filter.value.length === 0) {
        throw new InputError(`filter ${i + 1} (${filter.operator}) needs at least one value`);
      }
      if (i > 0 && r.logic.value === 'OR') filter.logic_operator = 'OR';
      return filter;
    });
  }

  const form = h('form', { className: 'filters', onsubmit: (e) => { e.preventDefault(); onApply(read); } },
    list,
    h('div', { className: 'buttons' },
      h('button', { type: 'button', className: 'ghost', id: 'add-filter', onclick: addRow }, '+ filter'),
      h('button', { type: 'submit', id: 'apply-filters' }, 'Apply'),
      h('button', { type: 'button', className: 'ghost', id: 'clear-filters', onclick: () => {
        rows.splice(0).forEach((r) => r.el.remove());
        onApply(read);
      } }, 'Clear')));
  element.replaceChildren(form);
  return { read, addRow };
}
