// WebSocket echo throughput client for bench/tunnel_ws.sh:
// `node ws_bench.mjs URL SIZE COUNT WINDOW` sends COUNT binary messages of
// SIZE bytes with at most WINDOW unanswered, checks every echo's size and
// prints `msgs_per_s MB_per_s` (MB = 10^6 bytes, counted one way).
import WebSocket from 'ws';

const [url, size, count, window] = process.argv.slice(2);
const n = Number(count);
const payload = Buffer.alloc(Number(size), 7);
const ws = new WebSocket(url, { maxPayload: 64 * 1024 * 1024 });
await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
let sent = 0;
let got = 0;
const start = process.hrtime.bigint();
await new Promise((resolve, reject) => {
  const pump = () => { while (sent < n && sent - got < Number(window)) { ws.send(payload); sent++; } };
  ws.on('message', (data) => {
    if (data.length !== payload.length) reject(new Error(`echo of ${data.length} bytes, sent ${payload.length}`));
    got++;
    if (got === n) resolve(); else pump();
  });
  ws.on('close', () => reject(new Error(`closed after ${got} of ${n} echoes`)));
  pump();
});
const secs = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`${(n / secs).toFixed(0)} ${((n * payload.length) / secs / 1e6).toFixed(2)}`);
ws.close();
