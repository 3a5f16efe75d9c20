// The connection: where the broker is (through the tunnel when the page is
// served by it), the tunnel's other URL form, and a SpecClient whose state
// changes are reported to `onState(state, text)`.
import { SpecClient } from './pkg/mqttspec_wasm.js';

/** ws(s)://<this host><this page's folder>mqtt (the tunnel's broker route), or `?broker=`. */
export function defaultBrokerUrl() {
  const explicit = new URL(location.href).searchParams.get('broker');
  if (explicit) return explicit;
  const url = new URL('mqtt', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  return url.href;
}

/** The tunnel URL of this page in the other form (subdomain <-> path), if it is a tunnel URL. */
export function otherTunnelForm() {
  const id = /^[a-z0-9]{12}$/;
  const [first, ...rest] = location.hostname.split('.');
  if (id.test(first) && rest.length) {
    return { label: 'Path form', url: `${location.protocol}//${location.host.slice(first.length + 1)}/${first}/` };
  }
  const segment = location.pathname.split('/')[1] ?? '';
  if (id.test(segment)) {
    // An IP address has no subdomains; locally `<id>.localhost` resolves to loopback.
    const host = /^[\d.]+$|^\[/.test(location.hostname) ? `localhost${location.port ? `:${location.port}` : ''}` : location.host;
    return { label: 'Subdomain form', url: `${location.protocol}//${segment}.${host}/` };
  }
  return null;
}

/** Connect a SpecClient that reconnects by itself; resolves once connected. */
export async function connect({ url, clientId, token }, onState) {
  onState('connecting', 'connecting…');
  const spec = await SpecClient.connect(url, {
    clientId, token: token || undefined, reconnectPeriod: 1000, maxReconnectDelay: 8000, timeoutMs: 15000,
  });
  spec.on('connect', () => onState('connected', `connected as ${spec.clientId}`));
  spec.on('offline', () => onState('offline', 'offline'));
  spec.on('close', (info) => {
    if (info?.reconnectInMs) onState('reconnecting', `reconnecting in ${(info.reconnectInMs / 1000).toFixed(1)} s`);
  });
  spec.on('reconnect', () => onState('reconnecting', 'reconnecting…'));
  spec.on('error', (e) => console.warn('mqttspec:', e.code, e.message));
  onState('connected', `connected as ${spec.clientId}`);
  return spec;
}
