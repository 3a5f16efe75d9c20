// ?broker=ws://... names the MQTTSpec server.
import { createApp } from 'vue';
import { connect } from 'mqttspec-wasm/live';
import App from './App.vue';

const broker = new URL(location.href).searchParams.get('broker');
connect(broker).then(
  (client) => createApp(App, { client }).mount('#app'),
  (e) => { document.getElementById('app').textContent = `error: ${e.code} ${e.message}`; },
);
