// The demo's sensor publisher: writes a reading for each of three devices
// every half second through MQTTSpec create requests (MQTT.js over TCP),
// as a device gateway would. Usage: node scripts/demo-publisher.mjs mqtt://127.0.0.1:1883
import mqtt from 'mqtt';

const url = process.argv[2] ?? process.env.DEMO_BROKER ?? 'mqtt://127.0.0.1:1883';
const prefix = process.env.DEMO_PREFIX ?? 'spec';
const clientId = 'demo-publisher';
const devices = { 'device-1': 21, 'device-2': 24, 'device-3': 27 };
const client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 1000 });
let sent = 0, failed = 0;
client.on('message', (_topic, payload) => {
  const m = JSON.parse(payload.toString());
  if (m.success === false) { failed += 1; console.error(`publisher: ${m.error?.code}: ${m.error?.message}`); }
});
await client.subscribeAsync(`${prefix}/${clientId}/response`, { qos: 1 });
console.log(`publisher: writing sensor readings to ${url} every 500 ms`);
const timer = setInterval(() => {
  for (const [device, level] of Object.entries(devices)) {
    const value = Math.round((level + Math.sin(Date.now() / 4000 + level) * 2 + (Math.random() - 0.5)) * 100) / 100;
    const request = { id: `pub-${++sent}`, type: 'request', operation: 'create', schema: 'public', entity: 'sensor_readings',
      data: { device_id: device, value, ts: new Date().toISOString() } };
    client.publish(`${prefix}/${clientId}/request`, JSON.stringify(request), { qos: 1 });
  }
}, 500);
const stop = async () => { clearInterval(timer); await client.endAsync(); console.log(`publisher: ${sent} readings sent, ${failed} refused`); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
