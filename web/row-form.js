// The create / edit form of an entity, generated from its `meta`: one
// type-aware input per column (a null box on nullable ones). Creating sends
// the fields filled in (an empty, untouched field is left to the database's
// default; an integer primary key is generated); editing sends only the
// fields changed, addressed by the primary key. Delete removes the row.
import { h } from './dom.js';
import { isGenerated, kindOf, primaryKey } from './columns.js';
import { valueInput } from './inputs.js';

/**
 * @param {HTMLElement} element replaced by the form
 * @param {object} spec a connected SpecClient
 * @param {object} meta `{schema, table, columns}`
 * @param {object} handlers `onError(error)`, `onDone(message)` after a write
 */
export function mountRowForm(element, spec, meta, { onError, onDone }) {
  const entity = `${meta.schema}.${meta.table}`;
  const key = primaryKey(meta);
  let editing = null; // the row being edited, or null when creating
  let fields = [];
  const title = h('h3', { id: 'form-title' });
  const grid = h('div', { className: 'form-grid' });
  const save = h('button', { type: 'submit', id: 'save' }, 'Save');
  const remove = h('button', { type: 'button', id: 'delete', className: 'danger', onclick: () => del() }, 'Delete');
  const fresh = h('button', { type: 'button', id: 'new-row', className: 'ghost', onclick: () => edit(null) }, 'New row');
  const form = h('form', { id: 'row-form', onsubmit: (e) => { e.preventDefault(); submit(); } },
    title, grid, h('div', { className: 'buttons' }, save, remove, fresh));
  element.replaceChildren(key ? form : h('p', { className: 'hint' },
    `${entity} has no primary key: rows cannot be addressed, so they are not edited here.`));

  /** Show `row` for editing, or an empty form to create one (`null`). */
  function edit(row) {
    if (!key) return;
    editing = row;
    title.textContent = row ? `Edit ${entity} ${key.name} = ${row[key.name]}` : `New ${entity} row`;
    remove.hidden = !row;
    fields = meta.columns.map((column) => {
      const touched = { value: false };
      const input = valueInput(column, {
        value: row ? row[column.name] : undefined,
        nullable: column.is_nullable,
        name: column.name,
        onInput: () => { touched.value = true; },
      });
      const locked = column === key && (row || isGenerated(column));
      input.field.disabled = Boolean(locked);
      if (locked && !row) input.field.placeholder = 'generated';
      return { column, input, touched, locked };
    });
    grid.replaceChildren(...fields.map(({ column, input }) => h('label', { dataset: { column: column.name } },
      h('span', {}, column.name, h('small', {}, ` ${column.type}${column.is_nullable ? '' : ', not null'}`)), input.el)));
  }

  /** The fields to send: changed ones on edit; filled or touched ones on create. */
  function data() {
    const out = {};
    for (const { column, input, touched, locked } of fields) {
      if (locked) continue;
      const filled = kindOf(column) !== 'boolean' && input.field.value !== '';
      if (touched.value || (!editing && filled)) out[column.name] = input.read();
    }
    return out;
  }

  async function submit() {
    try {
      const values = data();
      if (editing) {
        const id = editing[key.name];
        const { data: row } = await spec.update(entity, id, values);
        onDone(`Updated ${entity} ${id}`);
        edit(row);
      } else {
        const { data: row } = await spec.create(entity, values);
        onDone(`Created ${entity} ${row?.[key.name] ?? ''}`.trim());
        edit(row);
      }
    } catch (e) {
      onError(e);
    }
  }

  async function del() {
    if (!editing) return;
    const id = editing[key.name];
    try {
      await spec.delete(entity, id);
      onDone(`Deleted ${entity} ${id}`);
      edit(null);
    } catch (e) {
      onError(e);
    }
  }

  edit(null);
  return { edit, editing: () => editing };
}
