// Connects to the MQTTSpec server named by ?broker=ws://..., runs a live
// query on public.users and renders it: the same few lines a dashboard needs.
import init, { SpecClient } from 'mqttspec-wasm';
import { MqttClient } from 'mqttspec-wasm/mqtt';

const state = document.getElementById('state');
const list = document.getElementById('rows');

async function main() {
  await init();
  const broker = new URL(location.href).searchParams.get('broker');
  const client = await SpecClient.connect(broker, { clientId: 'vite-app' });
  await client.liveQuery('public.users', { sort: [{ column: 'id' }], limit: 5 }, (rows) => {
    list.replaceChildren(...rows.map((r) => Object.assign(document.createElement('li'), { textContent: `${r.id} ${r.name}` })));
  });
  state.textContent = `live (MqttClient export: ${typeof MqttClient})`;
}

main().catch((e) => { state.textContent = `error: ${e.code ?? ''} ${e.message}`; });
