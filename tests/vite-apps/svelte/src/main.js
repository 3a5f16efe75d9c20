// ?broker=ws://... names the MQTTSpec server.
import { mount } from 'svelte';
import { connect, liveStore } from 'mqttspec-wasm/live';
import App from './App.svelte';

const broker = new URL(location.href).searchParams.get('broker');
const target = document.getElementById('app');
connect(broker).then(
  (client) => {
    const users = liveStore(client, 'public.users', { sort: [{ column: 'id', direction: 'desc' }], limit: 5 });
    mount(App, { target, props: { users } });
  },
  (e) => { target.textContent = `error: ${e.code} ${e.message}`; },
);
