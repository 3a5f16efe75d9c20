// v1 wire compatibility of the edge worker, driven by a scripted v1
// forwarder (a raw `ws` client speaking the JSON protocol by hand, like the
// original http-tunnel `ttf`): message shapes, error-code mapping, late and
// duplicate answers, interleaved answers, ping/pong, bad frames.
// Runs the real worker on workerd via `wrangler dev`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWrangler, scriptedForwarder, kill } from './tunnel/harness.mjs';

const TIMEOUT_MS = 2000;
let wrangler;
let base;

before(async () => {
  wrangler = await startWrangler({ REQUEST_TIMEOUT_MS: String(TIMEOUT_MS) });
  base = wrangler.base;
});

after(() => kill(wrangler?.proc));

const forwarder = () => scriptedForwarder(base);

const b64 = (s) => Buffer.from(s).toString('base64');
const respond = (request_id, status_code, body, extra = {}) => ({
  type: 'http_response', request_id, status_code,
  headers: { 'content-type': ['text/plain'] }, body: b64(body), processing_time_ms: 1, ...extra,
});

test('connection_established and http_request have the v1 shape', async () => {
  const f = await forwarder();
  const e = f.established;
  assert.equal(e.type, 'connection_established');
  assert.match(e.tunnel_id, /^[a-z0-9]{12}$/);
  assert.ok(e.connection_id);
  assert.equal(e.path_based_url, `${base}/${e.tunnel_id}`);
  assert.equal(e.public_url, e.path_based_url);
  assert.match(e.subdomain_url, new RegExp(`^http://${e.tunnel_id}\\.localhost:\\d+$`));

  const pending = fetch(`${base}/${e.tunnel_id}/shape/x?a=1&b=2`, {
    method: 'POST', headers: { 'x-multi': 'v', 'content-type': 'application/json' }, body: '{"k":1}',
  });
  const req = await f.next();
  assert.equal(req.type, 'http_request');
  assert.equal(typeof req.request_id, 'string');
  assert.equal(req.method, 'POST');
  assert.equal(req.uri, '/shape/x?a=1&b=2');
  assert.deepEqual(req.headers['content-type'], ['application/json']);
  assert.ok(Array.isArray(req.headers['x-forwarded-proto']));
  assert.equal(Buffer.from(req.body, 'base64').toString(), '{"k":1}');
  assert.equal(typeof req.timestamp, 'number');
  assert.ok(Math.abs(req.timestamp - Date.now()) < 60_000);
  f.send(respond(req.request_id, 201, 'made', { headers: { 'set-cookie': ['a=1', 'b=2'], 'x-extra': ['1'] }, unknown_field: true }));
  const res = await pending;
  assert.equal(res.status, 201);
  assert.equal(await res.text(), 'made');
  assert.deepEqual(res.headers.getSetCookie(), ['a=1', 'b=2']);
  f.ws.close();
});

test('forwarder error codes map to 400/504/503/502', async () => {
  const f = await forwarder();
  const id = f.established.tunnel_id;
  for (const [code, status] of [
    ['invalid_request', 400], ['timeout', 504], ['local_service_unavailable', 503],
    ['internal_error', 502], ['some_future_code', 502],
  ]) {
    const pending = fetch(`${base}/${id}/err`);
    const req = await f.next();
    f.send({ type: 'error', request_id: req.request_id, code, message: `because ${code}` });
    const res = await pending;
    assert.equal(res.status, status, code);
    assert.match(await res.text(), new RegExp(`because ${code}`));
  }
  f.ws.close();
});

test('late and duplicate answers are dropped, never mis-delivered', async () => {
  const f = await forwarder();
  const id = f.established.tunnel_id;
  // A request nobody answers in time: 504.
  const late = fetch(`${base}/${id}/late`);
  const lateReq = await f.next();
  assert.equal((await late).status, 504);
  // Its answer arrives after the next request was sent: it must not be taken for it.
  const next = fetch(`${base}/${id}/next`);
  const nextReq = await f.next();
  assert.notEqual(nextReq.request_id, lateReq.request_id);
  f.send(respond(lateReq.request_id, 200, 'LATE'));
  f.send(respond(nextReq.request_id, 200, 'right answer'));
  assert.equal(await (await next).text(), 'right answer');
  // A duplicate answer is ignored, the following request gets its own.
  const first = fetch(`${base}/${id}/dup`);
  const dupReq = await f.next();
  f.send(respond(dupReq.request_id, 200, 'once'));
  f.send(respond(dupReq.request_id, 200, 'twice'));
  assert.equal(await (await first).text(), 'once');
  const after = fetch(`${base}/${id}/after`);
  const afterReq = await f.next();
  f.send(respond(afterReq.request_id, 200, 'own'));
  assert.equal(await (await after).text(), 'own');
  f.ws.close();
});

test('answers out of order reach their own requests; ping, pong and bad frames', async () => {
  const f = await forwarder();
  const id = f.established.tunnel_id;
  const pending = [0, 1, 2, 3, 4].map((i) => fetch(`${base}/${id}/n${i}`));
  const reqs = [];
  for (let i = 0; i < 5; i++) reqs.push(await f.next());
  f.send('this is not json');
  f.send({ type: 'teleport' });
  f.send({ type: 'ping' });
  for (const r of reqs.reverse()) f.send(respond(r.request_id, 200, `answer for ${r.uri}`));
  const bodies = await Promise.all(pending.map(async (p) => (await p).text()));
  assert.deepEqual(bodies, [0, 1, 2, 3, 4].map((i) => `answer for /n${i}`));
  const pong = await f.next();
  assert.equal(pong.type, 'pong');
  f.ws.close();
});
