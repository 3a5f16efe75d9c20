// A local WebSocket echo server for bench/tunnel_ws.sh: `node ws_echo.mjs`
// listens on a free 127.0.0.1 port and prints `listening PORT`.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
wss.on('listening', () => console.log(`listening ${wss.address().port}`));
