// Type-checked by `tsc -p .` in tests/node/framework_apps.test.mjs (not built):
// the package's declarations type every entry as an app uses it, and
// `@ts-expect-error` lines prove they are not `any`.
import init, { SpecClient, type Row } from 'mqttspec-wasm';
import { connect, liveStore, stableKey, type LiveSnapshot, type LiveStatus } from 'mqttspec-wasm/live';
import { SpecProvider, useLiveQuery, useSpec } from 'mqttspec-wasm/react';
import { MqttClient } from 'mqttspec-wasm/mqtt';
import type { ReactElement } from 'react';

interface User extends Row { id: number; name: string }

export async function plain(): Promise<string> {
  await init();
  const spec: SpecClient = await SpecClient.connect('ws://localhost/mqtt', { clientId: 'typed' });
  const store = liveStore<User>(spec, 'public.users', { sort: [{ column: 'id', direction: 'desc' }], limit: 5 });
  const stop: () => void = store.subscribe((s: LiveSnapshot<User>) => s.rows.map((u) => u.name.toUpperCase()));
  stop();
  const shared = await connect('ws://localhost/mqtt', { shared: true, clientId: 'typed' });
  await shared.create('public.users', { name: 'x' });
  const status: LiveStatus = store.getSnapshot().status;
  // @ts-expect-error: status is a union of four strings
  const wrong: 'bogus' = store.getSnapshot().status;
  // @ts-expect-error: shared is a boolean
  await connect('ws://localhost/mqtt', { shared: 'yes' });
  void MqttClient;
  return `${status}${wrong}${stableKey({ a: 1 })}`;
}

export function Users(): ReactElement {
  const { rows, status, error } = useLiveQuery<User>('public.users', { limit: 5 });
  const spec = useSpec();
  void spec?.delete('public.users', 1);
  // @ts-expect-error: rows are User, which has no `missing`
  void rows[0]?.missing.length;
  return <p title={error?.code}>{status} {rows.map((u) => u.name).join(', ')}</p>;
}

export function App(): ReactElement {
  return <SpecProvider url="ws://localhost/mqtt" options={{ shared: true }}><Users /></SpecProvider>;
}
