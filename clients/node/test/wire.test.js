'use strict';
// siam-server's wire contract from raw @grpc/grpc-js stubs, for what the library does not wrap:
// a Train stream against the contrastive loss computed here in JavaScript (loss, distances and
// both gradients), bad Train batches refused with INVALID_ARGUMENT naming the field (mapped by
// errorFor), and the trained worker in the library's status(). These were examples/node's
// --check mode before the example became a user of the library.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { siam, grpc, env, skipUnless, f32, makeRng, rawServices, camel } = require('./support');

const SERVER = env('SIAM_TEST_SERVER');
const EPS = 1e-12; // D = sqrt(sum + eps) inside the gradient (DESIGN.md), so that D = 0 is safe

/** One Train stream: writes every batch, collects every answer until the server ends it. */
function train(stub, batches, seconds = 10) {
  return new Promise((resolve, reject) => {
    const answers = [];
    const call = stub.Train({ deadline: Date.now() + seconds * 1000 });
    call.on('data', (r) => answers.push(r));
    call.on('error', (e) => reject(siam.errorFor(e.code, e.details, 'Train', e)));
    call.on('end', () => resolve(answers));
    for (const b of batches) call.write(b);
    call.end();
  });
}

/** The mean contrastive loss of a batch, its distances and gradients, in double precision. */
function contrastive(left, right, labels, dim, margin, convention) {
  const B = labels.length;
  let loss = 0;
  const dists = [];
  const gl = [];
  for (let i = 0; i < B; i++) {
    const s = convention === 'similar' ? labels[i] : 1 - labels[i]; // 1 for a similar pair
    let sum = 0;
    for (let k = 0; k < dim; k++) sum += (left[i * dim + k] - right[i * dim + k]) ** 2;
    const d = Math.sqrt(sum);
    const hinge = Math.max(margin - d, 0);
    loss += s * d * d + (1 - s) * hinge * hinge;
    dists.push(d);
    const coef = (2 * s - (2 * (1 - s) * hinge) / Math.sqrt(d * d + EPS)) / B;
    for (let k = 0; k < dim; k++) gl.push(coef * (left[i * dim + k] - right[i * dim + k]));
  }
  return { loss: loss / B, dists, gl, gr: gl.map((g) => -g) };
}

/** batch pairs as flat float32 values, distances spread over 0..3*scale (every 5th identical). */
function randomPairs(rng, batch, dim, scale) {
  const left = [];
  const right = [];
  for (let i = 0; i < batch; i++) {
    const a = Array.from({ length: dim }, () => f32(rng.uniform(-1, 1)));
    const dir = Array.from({ length: dim }, () => rng.gauss());
    const norm = Math.sqrt(dir.reduce((s, x) => s + x * x, 0)) || 1;
    const d = i % 5 === 0 ? 0 : rng.uniform(0, 3 * scale);
    left.push(...a);
    right.push(...a.map((x, k) => f32(x + (d * dir[k]) / norm)));
  }
  return { left, right };
}

describe('Train from raw grpc-js stubs (SIAM_TEST_SERVER)', { skip: skipUnless('SIAM_TEST_SERVER') }, () => {
  let stub;
  let client;
  let margin;
  let convention;
  const rng = makeRng(1);
  const workerId = `node wire test ${process.pid}`;
  before(async () => {
    stub = new (rawServices().Siamese)(SERVER, grpc.credentials.createInsecure());
    client = new siam.Client(SERVER);
    ({ margin, labelConvention: convention } = await client.status());
  });
  after(() => {
    stub.close();
    client.close();
  });

  it('a stream of two batches: loss, distances, grad_left, grad_right = the contrastive loss computed here', async () => {
    const batches = [];
    for (const [step, B, dim] of [[7, 6, 3], [8, 9, 3]]) {
      const { left, right } = randomPairs(rng, B, dim, margin / 1.5);
      const labels = Array.from({ length: B }, () => rng.int(2));
      labels[0] = 1;
      labels[1] = 0; // both labels in every batch
      batches.push({ dim, left, right, labels, step, worker_id: workerId });
    }
    const results = await train(stub, batches);
    assert.equal(results.length, batches.length, 'one answer per batch');
    batches.forEach((b, j) => {
      const res = results[j];
      const B = b.labels.length;
      const { dim } = b;
      const want = contrastive(b.left, b.right, b.labels, dim, margin, convention);
      assert.equal(Number(res.step), b.step, 'answered in order, the step echoed');
      assert.equal(res.distances.length, B);
      assert.equal(res.grad_left.length, B * dim);
      assert.equal(res.grad_right.length, B * dim);
      assert.ok(Math.abs(res.loss - want.loss) <= 1e-5 * Math.abs(want.loss) + 1e-7, `step ${b.step}: loss ${res.loss}, computed ${want.loss}`);
      for (let i = 0; i < B; i++) {
        assert.ok(Math.abs(res.distances[i] - want.dists[i]) <= 1e-5 * want.dists[i] + 1e-6,
          `step ${b.step} pair ${i}: distance ${res.distances[i]}, computed ${want.dists[i]}`);
        const s = convention === 'similar' ? b.labels[i] : 1 - b.labels[i];
        let diff = 0;
        for (let k = 0; k < dim; k++) diff = Math.max(diff, Math.abs(b.left[i * dim + k] - b.right[i * dim + k]));
        const scale = ((2 * s + (2 * (1 - s) * margin) / Math.max(want.dists[i], 1e-6)) / B) * diff;
        for (let k = i * dim; k < (i + 1) * dim; k++) {
          assert.ok(Math.abs(res.grad_left[k] - want.gl[k]) <= 1e-5 * scale + 1e-12, `step ${b.step} grad_left[${k}] ${res.grad_left[k]}, computed ${want.gl[k]}`);
          assert.ok(Math.abs(res.grad_right[k] - want.gr[k]) <= 1e-5 * scale + 1e-12, `step ${b.step} grad_right[${k}] ${res.grad_right[k]}, computed ${want.gr[k]}`);
        }
      }
    });
  });

  it('the trained worker in status(): every field of WorkerStatus, 15 pairs trained', async () => {
    const st = await client.status();
    const w = st.workers.find((x) => x.workerId === workerId);
    assert.ok(w, `worker ${workerId} not in ${JSON.stringify(st.workers)}`);
    const fields = rawServices().definition['siam.v1.WorkerStatus'].type.field.map((f) => camel(f.name));
    assert.deepEqual(Object.keys(w).sort(), fields.sort());
    assert.equal(w.pairsTrained, 15);
    assert.equal(typeof w.lastSeenSecondsAgo, 'number');
    assert.equal(typeof w.live, 'boolean');
  });

  const zeros = (n) => new Array(n).fill(0);
  const ones = (n) => new Array(n).fill(1);
  const bad = [
    ['a label of 2', /labels\[1\] is 2, expected 0 or 1/, { dim: 2, left: zeros(4), right: ones(4), labels: [1, 2] }],
    ['NaN in left', /left\[1\] is nan/, { dim: 2, left: [0, NaN, 0, 0], right: ones(4), labels: [1, 0] }],
    ['left of the wrong size', /left has 3 floats, expected batch\*dim = 2\*2 = 4/, { dim: 2, left: zeros(3), right: ones(4), labels: [1, 0] }],
    ['dim 0', /dim is 0/, { dim: 0, left: zeros(4), right: ones(4), labels: [1, 0] }],
  ];
  for (const [name, pattern, batch] of bad) {
    it(`Train refuses ${name}: INVALID_ARGUMENT naming the field (InvalidArgument from errorFor)`, async () => {
      const e = await train(stub, [{ ...batch, step: 1, worker_id: `${workerId} bad` }]).then(
        (r) => assert.fail(`answered ${JSON.stringify(r).slice(0, 100)}`), (err) => err);
      assert.ok(e instanceof siam.InvalidArgument, `${e.name}: ${e.message}`);
      assert.equal(e.method, 'Train');
      assert.match(e.message, /^[\x20-\x7e]+$/, 'a readable message');
      assert.match(e.message, pattern);
    });
  }
});
