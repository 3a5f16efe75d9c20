// A local service for bench/tunnel_ws.sh: `node ws_echo.mjs` listens on a
// free 127.0.0.1 port and prints `listening PORT`. WebSocket upgrades get an
// echo; `GET /download?n=BYTES` answers BYTES bytes (streamed, 64 KiB writes).
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const block = Buffer.alloc(64 * 1024, 7);
const server = createServer((req, res) => {
  const n = Number(new URL(req.url, 'http://x').searchParams.get('n') || 0);
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
  let sent = 0;
  const pump = () => {
    while (sent < n) {
      const len = Math.min(block.length, n - sent);
      sent += len;
      if (!res.write(block.subarray(0, len))) { res.once('drain', pump); return; }
    }
    res.end();
  };
  pump();
});
const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
