'use strict';
// What needs no siam-server: the error classes, arguments refused before any call, a dead port.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const util = require('util');
const fs = require('fs');
const path = require('path');
const { siam, grpc, MODULE } = require('./support');

const { Client, SiamError } = siam;

test('every gRPC code but OK has its SiamError subclass, named after the code', () => {
  for (const [name, code] of Object.entries(grpc.status)) {
    if (typeof code !== 'number' || code === grpc.status.OK) continue;
    const e = siam.errorFor(code, 'the message', 'Similarity');
    const cls = name.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c) => c.toUpperCase());
    assert.equal(e.constructor.name, cls);
    assert.equal(e.name, cls);
    assert.ok(e instanceof siam[cls] && e instanceof SiamError && e instanceof Error);
    assert.equal(e.code, code);
    assert.equal(e.codeName, name);
    assert.equal(e.details, 'the message');
    assert.equal(e.message, 'the message');
    assert.equal(e.method, 'Similarity');
    assert.equal(String(e), `${cls}: the message`);
  }
  const odd = siam.errorFor(99, '');
  assert.equal(odd.constructor, SiamError);
  assert.equal(odd.message, 'CODE_99'); // no details: the code's name
  assert.equal(siam.errorFor(3, '').message, 'INVALID_ARGUMENT');
});

test('the package carries or finds the .proto files', () => {
  const dir = siam.protoDir();
  for (const f of ['siam/v1/siam.proto', 'grpc/health/v1/health.proto']) assert.ok(fs.existsSync(path.join(dir, f)), f);
  if (MODULE.includes(`${path.sep}node_modules${path.sep}`)) {
    assert.equal(dir, path.join(path.dirname(require.resolve(MODULE)), 'proto'), 'an installed package reads its own copies');
  }
});

test('bad arguments are refused before any call', async () => {
  assert.throws(() => new Client(''), TypeError);
  assert.throws(() => new Client('127.0.0.1:1', { token: 'has space' }), RangeError);
  assert.throws(() => new Client('127.0.0.1:1', { token: 'é' }), RangeError);
  assert.throws(() => new Client('127.0.0.1:1', { tlsCert: 'c.pem' }), TypeError); // no key, no TLS
  assert.throws(() => new Client('127.0.0.1:1', { serverName: 'x' }), TypeError); // no TLS
  assert.throws(() => new Client('127.0.0.1:1', { timeout: 0 }), RangeError);
  assert.throws(() => new Client('127.0.0.1:1', { timeout: NaN }), RangeError);
  assert.throws(() => new Client('127.0.0.1:1', { timout: 5 }), /unknown option\(s\) timout/);
  assert.throws(() => new Client('127.0.0.1:1', { tlsCa: '/nonexistent/ca.pem' }), /tlsCa \/nonexistent\/ca.pem: ENOENT/);
  const c = new Client('127.0.0.1:1');
  try {
    await assert.rejects(c.similarity({ embeddings: [[1], [1]], images: [Buffer.alloc(0), Buffer.alloc(0)] }), TypeError);
    await assert.rejects(c.similarity(), TypeError);
    await assert.rejects(c.similarity({ embeddings: [[1]] }), TypeError); // not a pair
    await assert.rejects(c.similarity({ embeddings: ['ab', 'cd'] }), TypeError);
    await assert.rejects(c.similarity({ embeddings: [[1, 'x'], [1, 2]] }), /left\[1\] is string, not a number/);
    await assert.rejects(c.similarity({ embeddings: [[[1, null]], [[1, 2]]] }), /left\[0\]\[1\] is null/);
    await assert.rejects(c.similarity({ embeddings: [[1], [1]], dim: -1 }), RangeError);
    await assert.rejects(c.similarity({ images: [[[300, ...new Array(783).fill(0)]], [new Array(784).fill(0)]] }),
      /left: pixel 0 is 300; images are grey levels 0..255/);
    await assert.rejects(c.similarity({ images: [[0.5], [0]] }), RangeError);
    await assert.rejects(c.search(), TypeError);
    await assert.rejects(c.search({ images: Buffer.alloc(784), embeddings: [1] }), TypeError);
    await assert.rejects(c.search({ images: Buffer.alloc(784), k: 0 }), RangeError); // 0 would mean the server's default
    await assert.rejects(c.search({ images: Buffer.alloc(784), k: 2.5 }), TypeError);
    await assert.rejects(c.search({ images: [[256]] }), /images: pixel 0 is 256/);
    await assert.rejects(c.addToGallery({ images: [Buffer.alloc(784)], labels: [7] }), /labels\[0\] is number, not a string/);
    await assert.rejects(c.addToGallery({ labels: ['x'] }), TypeError);
    await assert.rejects(c.health(7), TypeError);
    await assert.rejects(c.status({ timeout: -1 }), RangeError);
  } finally {
    c.close();
  }
});

test('the token is in no inspection of the client', () => {
  const c = new Client('127.0.0.1:1', { token: 'secret-token-123' });
  try {
    assert.doesNotMatch(util.inspect(c, { showHidden: true, depth: 5 }), /secret-token-123/);
    assert.doesNotMatch(JSON.stringify(c), /secret-token-123/);
  } finally {
    c.close();
  }
});

test('a dead port is Unavailable', async () => {
  // a port that was just free: listen on 0, close, call it
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  const c = new Client(`127.0.0.1:${port}`, { timeout: 5 });
  try {
    const e = await c.status().then(() => assert.fail('Status succeeded on a dead port'), (err) => err);
    assert.ok(e instanceof siam.Unavailable, `${e.name}: ${e.message}`);
    assert.equal(e.code, grpc.status.UNAVAILABLE);
    assert.equal(e.codeName, 'UNAVAILABLE');
    assert.equal(e.method, 'Status');
    assert.match(e.message, /ECONNREFUSED/);
    assert.equal(e.cause.code, grpc.status.UNAVAILABLE); // the grpc-js ServiceError
    await assert.rejects(c.health(), siam.Unavailable);
    await assert.rejects(c.similarity({ embeddings: [[0], [1]] }), siam.Unavailable);
  } finally {
    c.close();
  }
});

test('a closed client refuses calls', async () => {
  const c = new Client('127.0.0.1:1');
  c.close();
  c.close(); // twice is fine
  await assert.rejects(c.status(), Error);
});
