// The few lines a React dashboard writes: a provider, a live query, a write.
// ?broker=ws://... names the MQTTSpec server; ?shared=1 shares one connection
// between the tabs; ?entity= picks the entity (default public.users).
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { SpecProvider, useLiveQuery, useSpec } from 'mqttspec-wasm/react';

const params = new URL(location.href).searchParams;
const entity = params.get('entity') ?? 'public.users';

function Users() {
  const { rows, status, error } = useLiveQuery(entity, { sort: [{ column: 'id', direction: 'desc' }], limit: 5 });
  const spec = useSpec();
  const [name, setName] = useState('');
  const add = async (event) => {
    event.preventDefault();
    await spec.create(entity, { name, email: `${name}@example.com`, status: 'active' });
    setName('');
  };
  return (
    <main>
      <p>Status: <output id="status">{status}</output> <output id="error">{error ? `${error.code}: ${error.message}` : ''}</output></p>
      <form onSubmit={add}>
        <input id="name" value={name} onChange={(e) => setName(e.target.value)} />
        <button id="add" disabled={!spec || !name}>Add</button>
      </form>
      <ul id="rows">{rows.map((r) => <li key={r.id} data-id={r.id}>{r.id} {r.name}</li>)}</ul>
    </main>
  );
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <SpecProvider url={params.get('broker')} options={{ shared: params.get('shared') === '1', clientId: params.get('client') ?? undefined }}>
      <Users />
    </SpecProvider>
  </StrictMode>,
);
