'use strict';
// The library against real siam-server processes (test/support.js names them): Status, health,
// Similarity against distances computed here, every error the servers send, token and TLS.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const util = require('util');
const { siam, grpc, env, skipUnless, f32, euclid, close, makeRng, rowsOf, rawServices, rawSimilarity, camel } = require('./support');

const { Client } = siam;
const SERVER = env('SIAM_TEST_SERVER');

/** The rejection of a promise that must fail (fails the test when it resolves). */
async function failure(promise) {
  try {
    const r = await promise;
    assert.fail(`the call succeeded (${JSON.stringify(r).slice(0, 100)})`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return e;
  }
}

/** r agrees with distances, scores and verdicts computed here for rows left and right. */
function checkAgainstJs(left, right, r, margin = 1) {
  assert.deepEqual(Object.keys(r).sort(), ['distances', 'same', 'scores', 'threshold']);
  assert.equal(r.threshold, f32(margin / 2));
  assert.equal(r.distances.length, left.length);
  assert.equal(r.scores.length, left.length);
  assert.equal(r.same.length, left.length);
  for (let i = 0; i < left.length; i++) {
    const want = euclid(left[i], right[i]);
    assert.ok(close(r.distances[i], want), `pair ${i}: distance ${r.distances[i]}, computed ${want}`);
    const score = 1 / (1 + (r.distances[i] / r.threshold) ** 2);
    assert.ok(Math.abs(r.scores[i] - score) <= 1e-6, `pair ${i}: score ${r.scores[i]}, computed ${score}`);
    assert.equal(r.same[i], r.distances[i] <= r.threshold, `pair ${i}: same ${r.same[i]} at ${r.distances[i]}`);
    assert.equal(typeof r.distances[i], 'number');
    assert.equal(typeof r.same[i], 'boolean');
  }
}

describe('a plain server (SIAM_TEST_SERVER, --max-message-mb 1)', { skip: skipUnless('SIAM_TEST_SERVER') }, () => {
  let c;
  const rng = makeRng(7);
  before(() => { c = new Client(SERVER); });
  after(() => c.close());

  it('status: every field of StatusResponse, as plain values', async () => {
    const st = await c.status();
    assert.match(st.version, /^\d+\.\d+\.\d+$/);
    assert.equal(st.margin, 1);
    assert.equal(st.labelConvention, 'similar');
    assert.equal(st.modelSpec, '');
    assert.ok(Array.isArray(st.workers));
    const message = rawServices().definition['siam.v1.StatusResponse'].type;
    const want = message.field.map((f) => camel(f.name)).sort();
    assert.deepEqual(Object.keys(st).sort(), want);
    for (const f of message.field) {
      const v = st[camel(f.name)];
      const type = f.label === 'LABEL_REPEATED' ? 'object' : f.type === 'TYPE_STRING' ? 'string' : f.type === 'TYPE_BOOL' ? 'boolean' : 'number';
      assert.equal(typeof v, type, `${f.name} (${f.type}) is ${typeof v}`);
    }
  });

  it('health: SERVING for the server and siam.v1.Siamese, NotFound for another service', async () => {
    assert.equal(await c.health(), 'SERVING');
    assert.equal(await c.health('siam.v1.Siamese'), 'SERVING');
    const e = await failure(c.health('no.such.Service'));
    assert.ok(e instanceof siam.NotFound, e.name);
    assert.equal(e.code, grpc.status.NOT_FOUND);
    assert.match(e.message, /no\.such\.Service/);
    assert.equal(e.method, 'Check');
  });

  it('similarity of rows: distances, scores and verdicts against JavaScript maths', async () => {
    for (const [n, dim] of [[1, 1], [40, 16], [5, 128], [64, 3]]) {
      const left = rowsOf(rng, n, dim);
      const right = rowsOf(rng, n, dim, 0.3);
      right[0] = [...left[0]]; // an identical pair
      const r = await c.similarity({ embeddings: [left, right] });
      checkAgainstJs(left, right, r);
      assert.deepEqual([r.distances[0], r.scores[0], r.same[0]], [0, 1, true]);
    }
  });

  it('similarity: one pair, Float32Array rows, flat typed arrays with dim, mixed rows', async () => {
    let r = await c.similarity({ embeddings: [[0, 0], [3, 4]] });
    assert.deepEqual(r.distances, [5]);
    assert.deepEqual(r.same, [false]);
    r = await c.similarity({ embeddings: [new Float32Array([1, 1, 1]), new Float64Array([1, 1, 3])] });
    assert.deepEqual(r.distances, [2]);
    const left = rowsOf(rng, 6, 3);
    const right = rowsOf(rng, 6, 3);
    r = await c.similarity({ embeddings: [Float32Array.from(left.flat()), Float32Array.from(right.flat())], dim: 3 });
    checkAgainstJs(left, right, r);
    r = await c.similarity({ embeddings: [left.map((row) => Float32Array.from(row)), right], dim: 3 });
    checkAgainstJs(left, right, r);
    r = await c.similarity({ embeddings: [left.map((row) => Float32Array.from(row)), right.map((row) => new Float64Array(row))] });
    checkAgainstJs(left, right, r);
  });

  it('similarity: score 1 for identical pairs, 0.5 and same exactly at the threshold', async () => {
    const t = f32(0.5);
    const left = [[0.25, -0.5, 1], [0, -0.5, 1], [0.25, -0.5, 1]];
    const right = [[0.25, -0.5, 1], [t, -0.5, 1], [0.25, -0.5, f32(1 + 1.5 * t)]];
    const r = await c.similarity({ embeddings: [left, right] });
    assert.deepEqual([r.distances[0], r.scores[0], r.same[0]], [0, 1, true]);
    assert.equal(r.distances[1], r.threshold);
    assert.ok(Math.abs(r.scores[1] - 0.5) <= 1e-6, `score ${r.scores[1]} at the threshold`);
    assert.equal(r.same[1], true, 'same at distance == threshold (D <= t)');
    assert.equal(r.same[2], false);
    assert.ok(r.scores[2] < 0.5);
  });

  it('calls in parallel resolve each to its own answer', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => c.similarity({ embeddings: [[0], [i]] })));
    results.forEach((r, i) => assert.deepEqual(r.distances, [i]));
  });

  // bad requests: InvalidArgument with the server's message, the same as a raw grpc-js call gets
  const bad = [
    ['wrong dim (rows of 3 and of 2)', { embeddings: [[[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1]], [[1, 2], [3, 4], [5, 6], [7, 8]]] },
      { dim: 3, left: [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1], right: [1, 2, 3, 4, 5, 6, 7, 8] }, /right has 8 floats, expected as many as left \(12 = 4 pairs x dim 3\)/],
    ['a length not a multiple of dim', { embeddings: [new Array(5).fill(1), new Array(5).fill(1)], dim: 2 },
      { dim: 2, left: new Array(5).fill(1), right: new Array(5).fill(1) }, /left has 5 floats, expected a non-zero multiple of dim = 2/],
    ['no pairs', { embeddings: [[], []], dim: 4 }, { dim: 4 }, /left has 0 floats/],
    ['NaN in left', { embeddings: [[0, NaN], [0, 0]] }, { dim: 2, left: [0, NaN], right: [0, 0] }, /left\[1\] is nan/],
    ['-Inf in right', { embeddings: [[[0, 0], [0, 0]], [[0, 0], [0, -Infinity]]] }, { dim: 2, left: [0, 0, 0, 0], right: [0, 0, 0, -Infinity] }, /right\[3\] is -inf/],
    ['dim 0', { embeddings: [[0, 0, 0, 0], [0, 0, 0, 0]], dim: 0 }, { dim: 0, left: [0, 0, 0, 0], right: [0, 0, 0, 0] }, /dim is 0, expected 1..4096/],
    ['dim above the limit', { embeddings: [new Float32Array(4097), new Float32Array(4097)] },
      { dim: 4097, left: new Array(4097).fill(0), right: new Array(4097).fill(0) }, /dim is 4097, expected 1..4096/],
  ];
  for (const [name, request, raw, pattern] of bad) {
    it(`similarity refuses ${name}: InvalidArgument with the server's message`, async () => {
      const e = await failure(c.similarity(request));
      assert.ok(e instanceof siam.InvalidArgument, `${e.name}: ${e.message}`);
      assert.ok(e instanceof siam.SiamError);
      assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(e.codeName, 'INVALID_ARGUMENT');
      assert.equal(e.method, 'Similarity');
      assert.match(e.message, pattern);
      assert.equal(e.details, e.message);
      assert.deepEqual([e.code, e.details], await rawSimilarity(SERVER, raw), 'the library passes the server\'s message on unchanged');
    });
  }

  it('image similarity before the server has a model: FailedPrecondition', async () => {
    const e = await failure(c.similarity({ images: [Buffer.alloc(784), Buffer.alloc(784)] }));
    assert.ok(e instanceof siam.FailedPrecondition, `${e.name}: ${e.message}`);
    assert.equal(e.code, grpc.status.FAILED_PRECONDITION);
    assert.match(e.message, /the server has no model to embed images yet/);
  });

  it('search before the server has a model, of an empty gallery, add without a model: FailedPrecondition', async () => {
    let e = await failure(c.search({ images: Buffer.alloc(784) }));
    assert.ok(e instanceof siam.FailedPrecondition, `${e.name}: ${e.message}`);
    assert.match(e.message, /no model/);
    assert.equal(e.method, 'Search');
    e = await failure(c.search({ embeddings: [0.5, 0.5] }));
    assert.ok(e instanceof siam.FailedPrecondition, `${e.name}: ${e.message}`);
    assert.match(e.message, /gallery is empty/);
    e = await failure(c.addToGallery({ images: [Buffer.alloc(784)], labels: ['x'] }));
    assert.ok(e instanceof siam.FailedPrecondition, `${e.name}: ${e.message}`);
    assert.equal(e.method, 'AddToGallery');
    const st = await c.status();
    assert.deepEqual([st.gallerySize, st.galleryEmbedded, st.inputShape], [0, 0, '']);
  });

  it('a message over the server\'s --max-message-mb: ResourceExhausted', async () => {
    const big = new Float32Array(200 * 1024).fill(0.5); // 800 KiB of floats each side, over 1 MiB
    const e = await failure(c.similarity({ embeddings: [big, big], dim: 1024 }));
    assert.ok(e instanceof siam.ResourceExhausted, `${e.name}: ${e.message}`);
    assert.match(e.message, /larger than this server's limit of 1048576 bytes/);
  });

  it('a tiny timeout: DeadlineExceeded; a call\'s own timeout overrides the client\'s', async () => {
    const quick = new Client(SERVER, { timeout: 1e-6 });
    try {
      const e = await failure(quick.status());
      assert.ok(e instanceof siam.DeadlineExceeded, `${e.name}: ${e.message}`);
      assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
      await assert.rejects(quick.similarity({ embeddings: [[0], [1]] }), siam.DeadlineExceeded);
      assert.equal((await quick.status({ timeout: 10 })).margin, 1);
    } finally {
      quick.close();
    }
    await assert.rejects(c.health('', { timeout: 1e-6 }), siam.DeadlineExceeded);
  });

  it('an unknown method through .channel: Unimplemented from errorFor', async () => {
    const raw = new grpc.Client(SERVER, grpc.credentials.createInsecure(), { channelOverride: c.channel });
    const err = await new Promise((resolve) => {
      raw.makeUnaryRequest('/siam.v1.Siamese/Nope', (x) => x, (x) => x, Buffer.alloc(0), new grpc.Metadata(),
        { deadline: Date.now() + 5000 }, (e) => resolve(e));
    });
    const e = siam.errorFor(err.code, err.details, 'Nope', err);
    assert.ok(e instanceof siam.Unimplemented, `${e.name}: ${e.message}`);
  });
});

describe('a server with a model (SIAM_TEST_MODEL_SERVER)', { skip: skipUnless('SIAM_TEST_MODEL_SERVER') }, () => {
  it('image similarity: Buffers, Uint8Arrays, nested arrays of grey levels', async () => {
    const rng = makeRng(3);
    const a = Buffer.from(Array.from({ length: 784 }, () => rng.int(256)));
    const b = Buffer.from(Array.from({ length: 784 }, () => rng.int(256)));
    const c = new Client(env('SIAM_TEST_MODEL_SERVER'));
    try {
      assert.notEqual((await c.status()).modelSpec, '');
      const r = await c.similarity({ images: [Buffer.concat([a, a]), Buffer.concat([a, b])] });
      assert.equal(r.distances.length, 2);
      assert.deepEqual([r.distances[0], r.scores[0], r.same[0]], [0, 1, true]);
      assert.ok(r.distances[1] > 0);
      const nested = [Array.from({ length: 28 }, (_, i) => [...b.subarray(i * 28, (i + 1) * 28)])]; // one 28x28 image
      const r2 = await c.similarity({ images: [nested, [[...a]]] }); // b vs a, as arrays of levels
      assert.deepEqual(r2.distances, [r.distances[1]]);
      const r3 = await c.similarity({ images: [new Uint8Array(b), [a]] }); // an array holding a Buffer
      assert.deepEqual(r3.distances, [r.distances[1]]);
      assert.equal(siam.IMAGE_BYTES, 784);
      const e = await failure(c.similarity({ images: [Buffer.alloc(100), Buffer.alloc(100)] }));
      assert.ok(e instanceof siam.InvalidArgument, `${e.name}: ${e.message}`);
      assert.match(e.message, /784/);
    } finally {
      c.close();
    }
  });
});

/** The distance-weighted vote (weight 1 / (D + 1e-6)), ties to the nearest, and its share. */
function weightedVote(matches) {
  const weight = new Map();
  for (const m of matches) weight.set(m.label, (weight.get(m.label) || 0) + 1 / (m.distance + 1e-6));
  const best = Math.max(...weight.values());
  const label = [...weight.keys()].find((l) => weight.get(l) >= best * (1 - 1e-12));
  const total = [...weight.values()].reduce((a, b) => a + b, 0);
  return [label, weight.get(label) / total];
}

describe('a server with a model and an empty gallery (SIAM_TEST_GALLERY_SERVER, --gallery-max 40)', { skip: skipUnless('SIAM_TEST_GALLERY_SERVER') }, () => {
  it('few-shot: addToGallery, then search; distances against image Similarity, the vote against JavaScript\'s', async () => {
    const rng = makeRng(11);
    const image = () => Buffer.from(Array.from({ length: 784 }, () => rng.int(256)));
    const shoes = Array.from({ length: 5 }, image);
    const others = Array.from({ length: 3 }, image);
    const c = new Client(env('SIAM_TEST_GALLERY_SERVER'));
    try {
      let st = await c.status();
      assert.deepEqual([st.inputShape, st.gallerySize], ['28x28x1', 0]);
      let e = await failure(c.search({ images: shoes[0] }));
      assert.ok(e instanceof siam.FailedPrecondition, `${e.name}: ${e.message}`);
      assert.match(e.message, /gallery is empty/);

      const added = await c.addToGallery({ images: shoes, labels: 'shoe' });
      assert.deepEqual(added, { ids: [0, 1, 2, 3, 4], gallerySize: 5, modelRound: st.round });
      const more = await c.addToGallery({ images: Buffer.concat(others), labels: ['x', 'y', 'zé'] });
      assert.deepEqual([more.ids, more.gallerySize], [[5, 6, 7], 8]);
      const gallery = [...shoes, ...others];
      const labels = ['shoe', 'shoe', 'shoe', 'shoe', 'shoe', 'x', 'y', 'zé'];

      const r = await c.search({ images: [shoes[2], others[1]], k: 8 });
      assert.deepEqual(Object.keys(r).sort(), ['gallerySize', 'modelRound', 'results']);
      assert.deepEqual([r.results.length, r.gallerySize, r.modelRound], [2, 8, (await c.status()).round]);
      const { threshold } = await c.similarity({ embeddings: [[0], [0]] });
      for (const [q, query] of [shoes[2], others[1]].entries()) {
        const res = r.results[q];
        assert.deepEqual(Object.keys(res).sort(), ['confidence', 'matches', 'predictedLabel']);
        assert.deepEqual(res.matches.map((m) => m.id).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
        const sim = await c.similarity({ images: [Buffer.concat(gallery.map(() => query)), Buffer.concat(gallery)] });
        for (const m of res.matches) {
          assert.deepEqual(Object.keys(m).sort(), ['distance', 'id', 'label', 'score']);
          assert.equal(m.label, labels[m.id]);
          assert.ok(close(m.distance, sim.distances[m.id]), `query ${q}, item ${m.id}: Search ${m.distance}, Similarity ${sim.distances[m.id]}`);
          assert.ok(Math.abs(m.score - 1 / (1 + (m.distance / threshold) ** 2)) <= 1e-6);
        }
        const d = res.matches.map((m) => m.distance);
        assert.deepEqual(d, [...d].sort((a, b) => a - b));
        const [label, share] = weightedVote(res.matches);
        assert.equal(res.predictedLabel, label);
        assert.ok(Math.abs(res.confidence - share) <= 1e-5, `confidence ${res.confidence}, computed ${share}`);
      }
      assert.deepEqual([r.results[0].matches[0].id, r.results[0].matches[0].label, r.results[0].matches[0].score], [2, 'shoe', 1]);
      assert.ok(r.results[0].matches[0].distance <= 1e-6);
      assert.deepEqual([r.results[1].matches[0].id, r.results[1].matches[0].label], [6, 'y']);
      assert.equal(r.results[0].predictedLabel, 'shoe');
      assert.equal((await c.search({ images: shoes[0] })).results[0].matches.length, 5); // k = 5 by default
      const nested = [Array.from({ length: 28 }, (_, i) => [...shoes[4].subarray(i * 28, (i + 1) * 28)])];
      assert.equal((await c.search({ images: nested, k: 1 })).results[0].matches[0].id, 4);

      const dim = Number((await c.status()).modelSpec.split('dense').pop().split(' ')[0]);
      const q = Array.from({ length: dim }, () => rng.gauss());
      const er = await c.search({ embeddings: [q, q.map((x) => -x)], k: 4 });
      assert.deepEqual(er.results.map((x) => x.matches.length), [4, 4]);
      e = await failure(c.search({ embeddings: [1, 2, 3] }));
      assert.ok(e instanceof siam.InvalidArgument, `${e.name}: ${e.message}`);
      assert.match(e.message, /dim/);

      e = await failure(c.search({ images: shoes[0], k: 65 }));
      assert.ok(e instanceof siam.InvalidArgument, `${e.name}: ${e.message}`);
      e = await failure(c.search({ images: Buffer.alloc(100) }));
      assert.ok(e instanceof siam.InvalidArgument, `${e.name}: ${e.message}`);
      assert.match(e.message, /784/);
      e = await failure(c.addToGallery({ images: [shoes[0]], labels: ['x'.repeat(65)] }));
      assert.ok(e instanceof siam.InvalidArgument, `${e.name}: ${e.message}`);
      assert.match(e.message, /labels\[0\]/);

      const two = await c.addToGallery({ images: Buffer.concat([image(), image()]), labels: 'pair' }); // count from the input shape
      assert.equal(two.ids.length, 2);
      await assert.rejects(c.addToGallery({ images: Buffer.alloc(784 + 5), labels: 'not a whole number' }), TypeError);
      assert.equal((await c.addToGallery({ images: Array.from({ length: 30 }, image), labels: 'fill' })).gallerySize, 40);
      e = await failure(c.addToGallery({ images: [shoes[0]], labels: ['one too many'] }));
      assert.ok(e instanceof siam.ResourceExhausted, `${e.name}: ${e.message}`);
      assert.match(e.message, /--gallery-max/);
      st = await c.status();
      assert.equal(st.gallerySize, 40);
    } finally {
      c.close();
    }
  });
});

describe('a server with a token (SIAM_TEST_TOKEN_SERVER)', { skip: skipUnless('SIAM_TEST_TOKEN_SERVER', 'SIAM_TEST_TOKEN') }, () => {
  const TOKEN = env('SIAM_TEST_TOKEN');
  const target = env('SIAM_TEST_TOKEN_SERVER');
  it('the right token is let in', async () => {
    const c = new Client(target, { token: TOKEN });
    try {
      assert.equal(await c.health(), 'SERVING');
      assert.deepEqual((await c.similarity({ embeddings: [[1], [4]] })).distances, [3]);
      assert.doesNotMatch(util.inspect(c), new RegExp(TOKEN));
    } finally {
      c.close();
    }
  });
  for (const [name, token] of [['no token', undefined], ['a wrong token', `not-${TOKEN}`]]) {
    it(`${name}: Unauthenticated with the server's message, the token in no error`, async () => {
      const c = new Client(target, { token });
      try {
        const e = await failure(c.status());
        assert.ok(e instanceof siam.Unauthenticated, `${e.name}: ${e.message}`);
        assert.equal(e.code, grpc.status.UNAUTHENTICATED);
        assert.match(e.message, /bearer token/i);
        assert.doesNotMatch(`${e.stack} ${util.inspect(e, { depth: 6 })}`, new RegExp(TOKEN));
        await assert.rejects(c.similarity({ embeddings: [[1], [4]] }), siam.Unauthenticated);
      } finally {
        c.close();
      }
    });
  }
});

describe('a TLS server with a token (SIAM_TEST_TLS_SERVER)', { skip: skipUnless('SIAM_TEST_TLS_SERVER', 'SIAM_TEST_TLS_CA', 'SIAM_TEST_TOKEN') }, () => {
  const TOKEN = env('SIAM_TEST_TOKEN');
  const CA = env('SIAM_TEST_TLS_CA');
  const port = env('SIAM_TEST_TLS_SERVER').split(':').pop();
  it('TLS with the CA as a path or bytes, by name or with serverName', async () => {
    for (const [target, options] of [[`localhost:${port}`, { tlsCa: CA }], [`127.0.0.1:${port}`, { tlsCa: CA, serverName: 'localhost' }],
      [`localhost:${port}`, { tlsCa: fs.readFileSync(CA) }]]) {
      const c = new Client(target, { ...options, token: TOKEN });
      try {
        assert.equal(await c.health(), 'SERVING');
        assert.deepEqual((await c.similarity({ embeddings: [[0], [2]] })).distances, [2]);
        assert.match((await c.status()).version, /^\d/);
      } finally {
        c.close();
      }
    }
  });
  const refusals = [
    ['plaintext to a TLS server', `localhost:${port}`, { token: TOKEN }, siam.Unavailable],
    ['TLS without the token', `localhost:${port}`, { tlsCa: CA }, siam.Unauthenticated],
    ['a CA that did not sign the server\'s certificate', `localhost:${port}`, { tlsCa: env('SIAM_TEST_OTHER_CA') || CA, token: TOKEN }, siam.Unavailable],
    ['a serverName the certificate does not hold', `127.0.0.1:${port}`, { tlsCa: CA, serverName: 'elsewhere.example', token: TOKEN }, siam.Unavailable],
  ];
  for (const [name, target, options, cls] of refusals) {
    it(`${name}: ${cls.name}`, { skip: name.startsWith('a CA') && skipUnless('SIAM_TEST_OTHER_CA') }, async () => {
      const c = new Client(target, { ...options, timeout: 5 });
      try {
        const e = await failure(c.status());
        assert.ok(e instanceof cls, `${e.name}: ${e.message}`);
      } finally {
        c.close();
      }
    });
  }
});

describe('a mutual TLS server (SIAM_TEST_MTLS_SERVER)', { skip: skipUnless('SIAM_TEST_MTLS_SERVER', 'SIAM_TEST_TLS_CA', 'SIAM_TEST_TLS_CLIENT_CERT', 'SIAM_TEST_TLS_CLIENT_KEY') }, () => {
  const port = env('SIAM_TEST_MTLS_SERVER').split(':').pop();
  const CA = env('SIAM_TEST_TLS_CA');
  it('with the client certificate: SERVING; without: Unavailable', async () => {
    const c = new Client(`localhost:${port}`, { tlsCa: CA, tlsCert: env('SIAM_TEST_TLS_CLIENT_CERT'), tlsKey: env('SIAM_TEST_TLS_CLIENT_KEY') });
    try {
      assert.equal(await c.health(), 'SERVING');
      assert.deepEqual((await c.similarity({ embeddings: [[0, 0], [0, 1]] })).distances, [1]);
    } finally {
      c.close();
    }
    const anon = new Client(`localhost:${port}`, { tlsCa: CA, timeout: 5 });
    try {
      const e = await failure(anon.status());
      assert.ok(e instanceof siam.Unavailable, `${e.name}: ${e.message}`);
    } finally {
      anon.close();
    }
  });
});
