// The entities the server lets this client use: one `meta` request with
// entity "*" (docs/MQTTSPEC_PROTOCOL.md, "Listing the entities"). A server
// without the list (ResolveSpec's, or an older mqttspec-server) answers
// `model_not_found` or `invalid_message`: then the user types a name, and
// a `meta` of that name describes it.

/** Codes with which a server says it has no entity list. */
const NO_LIST = new Set(['model_not_found', 'invalid_message', 'invalid_model', 'meta_error']);

/**
 * The entities as `{schema, table, columns}[]`, or `null` when the server
 * cannot list them. Other failures (unauthorized, timeout...) are thrown.
 */
export async function listEntities(spec) {
  try {
    const { data } = await spec.meta('*');
    if (!Array.isArray(data?.entities)) return null;
    return data.entities;
  } catch (e) {
    if (NO_LIST.has(e.code)) return null;
    throw e;
  }
}

/** The `meta` of one entity typed by the user ("users" or "schema.users"). */
export async function describeEntity(spec, name) {
  const { data } = await spec.meta(name.trim());
  if (!Array.isArray(data?.columns)) {
    throw Object.assign(new Error(`meta of ${name} has no columns`), { code: 'meta_error' });
  }
  return data;
}

/** "schema.table" of a `meta`. */
export const entityName = (meta) => (meta.schema ? `${meta.schema}.${meta.table}` : meta.table);
