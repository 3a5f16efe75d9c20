// The request inspector of `ttf --inspect` in headless Chromium: requests
// relayed through wrangler dev (workerd) and the real `ttf` appear live;
// JSON is pretty-printed, images shown, binary as hex; replay (plain and
// edited) reaches the local service again; "copy as curl" gives a command
// that works; HAR exports; a relayed WebSocket shows frame by frame and an
// MQTT.js session through the tunnel to mosquitto decodes into packets;
// the entry count and body cap bound memory. Needs `cargo build -p forwarder`.
// Screenshot: tests/artifacts/inspector-mqtt.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import WebSocket, { WebSocketServer } from 'ws';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { root, startWrangler, startTtf, startMosquitto, kill } from './tunnel/harness.mjs';

// A 1x1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const posts = [];
let wrangler; let mosquitto; let ttf; let small; let inspector; let local; let echo; let browser; let page;

function handler(req, res) {
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.url === '/json') { res.setHeader('content-type', 'application/json'); res.end('{"a":1,"list":[1,2,3]}'); return; }
    if (req.url === '/img.png') { res.setHeader('content-type', 'image/png'); res.end(PNG); return; }
    if (req.url === '/bin') { res.setHeader('content-type', 'application/octet-stream'); res.end(Buffer.from([0, 1, 2, 0xfe, 0xff])); return; }
    if (req.url.startsWith('/echo')) {
      posts.push({ method: req.method, url: req.url, body: body.toString() });
      res.setHeader('content-type', 'text/plain');
      res.end(`echo:${body}`);
      return;
    }
    res.statusCode = 404; res.end('no');
  });
}

/** The inspector's URL from ttf's output. */
function inspectorUrl(t) {
  const m = t.output().match(/Inspector: (http:\/\/[0-9.:]+)/);
  assert.ok(m, `no Inspector line in:\n${t.output()}`);
  return m[1];
}

/** GET/POST through the tunnel (path form; the inspector sees `path`). */
async function through(path, init = {}) {
  const res = await fetch(`${ttf.url}${path}`, init);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

/** The inspector row whose path cell is exactly `path`. */
function row(path) {
  return page.locator('[data-testid=entry]', { has: page.locator('[data-testid=path]', { hasText: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`) }) }).first();
}

before(async () => {
  wrangler = await startWrangler();
  mosquitto = await startMosquitto();
  local = createServer(handler);
  await new Promise((r) => local.listen(0, '127.0.0.1', r));
  echo = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => echo.on('listening', r));
  echo.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  ttf = await startTtf(wrangler.base, ['-p', String(local.address().port), '--inspect', '127.0.0.1:0',
    '--route', `/ws=ws://127.0.0.1:${echo.address().port}`, '--route', `/mqtt=ws://127.0.0.1:${mosquitto.ws}`]);
  inspector = inspectorUrl(ttf);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(inspector);
});

after(async () => {
  await browser?.close();
  kill(ttf?.proc); kill(small?.proc); kill(wrangler?.proc); kill(mosquitto?.proc);
  echo?.close(); local?.close();
});

test('requests appear live with bodies shown by type', async () => {
  assert.equal((await through('/json')).status, 200);
  assert.equal((await through('/img.png')).status, 200);
  assert.equal((await through('/bin')).status, 200);
  assert.equal((await through('/echo/1', { method: 'POST', body: 'hello inspector' })).body.toString(), 'echo:hello inspector');
  // The page was opened before the requests: they arrive by long poll.
  await row('/echo/1').waitFor();
  await row('/json').click();
  const json = page.locator('[data-testid=response-body] pre[data-kind=json]');
  await json.waitFor();
  assert.match(await json.textContent(), /"a": 1,\n {2}"list": \[/);
  assert.match(await page.locator('[data-testid=status]').textContent(), /^200 in \d+ ms/);
  await row('/img.png').click();
  const img = page.locator('[data-testid=response-body-image]');
  await img.waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid=response-body-image]')?.naturalWidth === 1);
  await row('/bin').click();
  const hex = page.locator('[data-testid=response-body] pre[data-kind=hex]');
  await hex.waitFor();
  assert.match(await hex.textContent(), /00 01 02 fe ff/);
  await row('/echo/1').click();
  await page.locator('[data-testid=request-body] pre[data-kind=text]', { hasText: 'hello inspector' }).waitFor();
});

test('replay, edited replay and copy as curl reach the local service', async () => {
  await row('/echo/1').click();
  const before = posts.length;
  await page.locator('[data-testid=replay]').click();
  await row('/echo/1 (replay of').waitFor();
  assert.equal(posts.length, before + 1);
  assert.deepEqual(posts.at(-1), { method: 'POST', url: '/echo/1', body: 'hello inspector' });

  await row('/echo/1').last().click();
  await page.locator('[data-testid=edit]').click();
  const area = page.locator('[data-testid=edit-json]');
  const edited = JSON.parse(await area.inputValue());
  edited.uri = '/echo/edited';
  edited.body = 'changed body';
  await area.fill(JSON.stringify(edited));
  await page.locator('[data-testid=send-edit]').click();
  await page.locator('[data-testid=response-body] pre', { hasText: 'echo:changed body' }).waitFor();
  assert.deepEqual(posts.at(-1), { method: 'POST', url: '/echo/edited', body: 'changed body' });

  await page.locator('[data-testid=curl]').click();
  const curl = await page.locator('[data-testid=curl-text]').textContent();
  assert.match(curl, /^curl -X 'POST' 'http:\/\/127\.0\.0\.1:\d+\/echo\/edited'/);
  // Asynchronously: the local service runs in this process.
  const { stdout } = await promisify(execFile)('sh', ['-c', curl]);
  assert.equal(stdout, 'echo:changed body');
});

test('HAR export lists the HTTP requests', async () => {
  const href = await page.locator('[data-testid=har]').getAttribute('href');
  const har = await (await fetch(new URL(href, inspector))).json();
  assert.equal(har.log.version, '1.2');
  const urls = har.log.entries.map((e) => e.request.url);
  assert.ok(urls.some((u) => u.endsWith('/json')), urls.join(' '));
  const post = har.log.entries.find((e) => e.request.url.endsWith('/echo/1'));
  assert.equal(post.request.postData.text, 'hello inspector');
  assert.equal(post.response.content.text, 'echo:hello inspector');
  assert.ok(!Number.isNaN(Date.parse(post.startedDateTime)));
});

test('a relayed WebSocket shows frame by frame', async () => {
  const ws = new WebSocket(`${ttf.url.replace('http', 'ws')}/ws/chat`);
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  const got = [];
  ws.on('message', (d) => got.push(d));
  ws.send('hello ws');
  ws.send(Buffer.from([9, 8, 7]));
  await new Promise((resolve) => { const t = setInterval(() => { if (got.length === 2) { clearInterval(t); resolve(); } }, 20); });
  ws.close(1000, 'done');
  await new Promise((r) => ws.on('close', r));
  await row('/ws/chat').click();
  await page.locator('[data-testid=status]', { hasText: 'closed 1000 done' }).waitFor();
  const frames = page.locator('[data-testid=frame]');
  assert.equal(await frames.count(), 4);
  const texts = await frames.allTextContents();
  assert.match(texts[0], /→ local.*text.*hello ws/);
  assert.match(texts.join('\n'), /← local.*binary.*09 08 07/);
});

test('an MQTT-over-WebSocket session decodes into MQTT packets', async () => {
  const url = `${ttf.url.replace('http', 'ws')}/mqtt`;
  const opts = { protocolVersion: 4, reconnectPeriod: 0, clientId: 'inspected-client' };
  const client = await mqtt.connectAsync(url, opts);
  const received = new Promise((resolve) => client.on('message', (topic, payload) => resolve(payload.toString())));
  await client.subscribeAsync('insp/t', { qos: 1 });
  await client.publishAsync('insp/t', 'payload-17', { qos: 1 });
  assert.equal(await received, 'payload-17');
  await client.endAsync();
  await row('/mqtt (MQTT)').click();
  await page.locator('[data-testid=mqtt-type]', { hasText: 'PUBACK' }).first().waitFor();
  const types = await page.locator('[data-testid=mqtt-type]').allTextContents();
  for (const t of ['CONNECT', 'CONNACK', 'SUBSCRIBE', 'SUBACK', 'PUBLISH', 'PUBACK']) assert.ok(types.includes(t), `${t} in ${types}`);
  const publishes = page.locator('[data-testid=mqtt-packet]', { hasText: 'payload-17' });
  assert.ok(await publishes.count() >= 2, 'the PUBLISH both ways');
  const first = await publishes.first().textContent();
  assert.match(first, /PUBLISH.*insp\/t.*QoS 1.*id \d+.*"payload-17"/);
  assert.match(await page.locator('[data-testid=mqtt-packet]').first().textContent(), /CONNECT.*inspected-client/);
  mkdirSync(join(root, 'tests/artifacts'), { recursive: true });
  await page.screenshot({ path: join(root, 'tests/artifacts/inspector-mqtt.png') });
});

test('memory is bounded: last N requests, bodies cut at the cap', async () => {
  small = await startTtf(wrangler.base, ['-p', String(local.address().port), '--inspect', '127.0.0.1:0',
    '--inspect-requests', '3', '--inspect-body-cap', '8']);
  for (let i = 0; i < 5; i += 1) {
    const res = await fetch(`${small.url}/echo/${i}`, { method: 'POST', body: 'x'.repeat(100) });
    assert.equal(res.status, 200);
  }
  const base = inspectorUrl(small);
  const { entries } = await (await fetch(`${base}/api/entries`)).json();
  assert.deepEqual(entries.map((e) => e.uri), ['/echo/2', '/echo/3', '/echo/4']);
  const last = await (await fetch(`${base}/api/entries/${entries[2].id}`)).json();
  assert.equal(Buffer.from(last.request_body.bytes, 'base64').length, 8);
  assert.equal(last.request_body.total, 100);
  const refused = await fetch(`${base}/api/entries/${entries[2].id}/replay`, { method: 'POST' });
  assert.equal(refused.status, 400);
  assert.match(await refused.text(), /cut at 8 of 100 bytes/);
});
