#!/usr/bin/env node
// Call siam-server from Node.js: Similarity, Status, the gRPC health check (and Train in --check).
//
// Uses @grpc/grpc-js (pure JavaScript gRPC) and @grpc/proto-loader, which reads
// proto/siam/v1/siam.proto at run time: no code generation step. From this directory:
//
//   npm ci                                   # or npm install
//   node similarity.js --server 127.0.0.1:50051
//       prints the server's Status and health, then the distances, scores and same/different
//       verdicts of a few example pairs of embeddings.
//   node similarity.js --server 127.0.0.1:50051 --check
//       the test suite's cross-language check (tests/node_test.sh): Similarity against distances
//       computed here, scores and verdicts (0.5 and same exactly at the threshold), bad requests
//       refused with INVALID_ARGUMENT naming the field, a Train stream against the contrastive
//       loss computed here, and the health check. One line per check; exits 1 if any fails.
//       It expects the server's default threshold (margin / 2).
//
// Exit status: 0 on success, 1 on a failed check or call, 2 on bad usage.
'use strict';

const path = require('path');

let grpc, protoLoader;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
} catch (e) {
  process.stderr.write(
    `similarity.js: cannot load @grpc/grpc-js / @grpc/proto-loader (${e.message.split('\n')[0]});\n` +
      `run "npm ci" (or "npm install") in ${__dirname} first\n`);
  process.exit(1);
}

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message) {
  if (message) process.stderr.write(`similarity.js: ${message}\n`);
  process.stderr.write(
    'Usage: node similarity.js [--server HOST:PORT] [--dim N] [--check] [--seed N] [--proto DIR]\n' +
      '  --server HOST:PORT  siam-server address (default 127.0.0.1:50051)\n' +
      '  --dim N             dimension of the demo embeddings, 1..4096 (default 4)\n' +
      '  --check             run the cross-language checks instead of the demo\n' +
      '  --seed N            seed of the random embeddings of --check (default 1)\n' +
      '  --proto DIR         directory holding siam/v1/siam.proto (default the repository\'s proto/)\n');
  process.exit(message ? 2 : 0);
}

function parseArgs(argv) {
  const opts = { server: '127.0.0.1:50051', dim: 4, check: false, seed: 1, proto: PROTO_ROOT };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const integer = (lo, hi) => {
      const v = value();
      if (!/^-?\d+$/.test(v) || Number(v) < lo || Number(v) > hi) usage(`${a} ${v} is out of range ${lo}..${hi}`);
      return Number(v);
    };
    switch (a) {
      case '--server': opts.server = value(); break;
      case '--dim': opts.dim = integer(1, 4096); break;
      case '--seed': opts.seed = integer(0, 2 ** 31 - 1); break;
      case '--proto': opts.proto = value(); break;
      case '--check': opts.check = true; break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown option '${a}'`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// The service, from the .proto files

function loadServices(protoRoot) {
  const options = { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [protoRoot] };
  const def = protoLoader.loadSync(['siam/v1/siam.proto', 'grpc/health/v1/health.proto'], options);
  const pkg = grpc.loadPackageDefinition(def);
  return { Siamese: pkg.siam.v1.Siamese, Health: pkg.grpc.health.v1.Health };
}

// Unary calls as promises; the error is the grpc-js ServiceError (code, details).
function unary(client, method, request, seconds = 5) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + seconds * 1000 }, (err, response) =>
      err ? reject(err) : resolve(response));
  });
}

// One Train stream: writes every batch, collects every answer until the server ends the stream.
function train(client, batches, seconds = 5) {
  return new Promise((resolve, reject) => {
    const answers = [];
    const call = client.Train({ deadline: Date.now() + seconds * 1000 });
    call.on('data', (r) => answers.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(answers));
    for (const b of batches) call.write(b);
    call.end();
  });
}

function waitReady(client, seconds) {
  return new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + seconds * 1000, (err) => (err ? reject(err) : resolve())));
}

const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);

// ---------------------------------------------------------------------------------------------
// Reference maths (DESIGN.md), in double precision on the float32 values the wire carries

const EPS = 1e-12; // D = sqrt(sum + eps) inside the gradient, so that D = 0 is safe
const f32 = Math.fround;

function distance(a, b) {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += (a[k] - b[k]) ** 2;
  return Math.sqrt(s);
}

function rows(flat, dim) {
  const out = [];
  for (let i = 0; i < flat.length; i += dim) out.push(flat.slice(i, i + dim));
  return out;
}

// (loss, distances, gradLeft, gradRight) of the mean contrastive loss of a batch.
function contrastive(left, right, labels, dim, margin, convention) {
  const B = labels.length;
  const L = rows(left, dim), R = rows(right, dim);
  let loss = 0;
  const dists = [], gl = [];
  for (let i = 0; i < B; i++) {
    const s = convention === 'similar' ? labels[i] : 1 - labels[i]; // 1 for a similar pair
    const d = distance(L[i], R[i]);
    const hinge = Math.max(margin - d, 0);
    loss += s * d * d + (1 - s) * hinge * hinge;
    dists.push(d);
    const coef = (2 * s - (2 * (1 - s) * hinge) / Math.sqrt(d * d + EPS)) / B;
    for (let k = 0; k < dim; k++) gl.push(coef * (L[i][k] - R[i][k]));
  }
  return { loss: loss / B, dists, gl, gr: gl.map((g) => -g) };
}

const close = (got, want, rel = 1e-5, abs = 1e-7) => Math.abs(got - want) <= Math.max(rel * Math.max(Math.abs(got), Math.abs(want)), abs);

// mulberry32: a small seeded generator, so --check is reproducible
function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    gauss: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
    int: (n) => Math.floor(next() * n),
  };
}

// batch pairs as flat float32 arrays, distances spread over 0..3*scale (some identical)
function randomPairs(rng, batch, dim, scale) {
  const left = [], right = [];
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

// ---------------------------------------------------------------------------------------------
// Demo

async function demo(siam, health, address, dim) {
  const st = await unary(siam, 'Status', {});
  const h = await unary(health, 'Check', { service: '' });
  console.log(`siam-server ${st.version} at ${address}: margin ${st.margin}, label 1 marks ` +
    `${st.label_convention} pairs, global step ${st.global_step}, ${st.workers.length} worker(s) seen`);
  console.log(`health: ${h.status}`);

  const base = Array.from({ length: dim }, (_, k) => 0.1 * k);
  const moved = (d) => base.map((x) => x + d / Math.sqrt(dim));
  const atHalfMargin = [st.margin / 2, ...base.slice(1)]; // exactly margin/2 from base along axis 0
  const pairs = [['identical', base, base], ['close', base, moved(0.1)],
    ['at margin/2', base, atHalfMargin], ['far', base, moved(2.0)]];
  const request = { dim, left: pairs.flatMap((p) => p[1]), right: pairs.flatMap((p) => p[2]) };
  const r = await unary(siam, 'Similarity', request);

  console.log(`Similarity of ${pairs.length} pairs of ${dim}-d embeddings (threshold ${r.threshold}):`);
  console.log(`  ${'pair'.padEnd(18)} ${'distance'.padStart(9)} ${'score'.padStart(7)}  same`);
  pairs.forEach(([name], i) => {
    console.log(`  ${name.padEnd(18)} ${r.distances[i].toFixed(4).padStart(9)} ` +
      `${r.scores[i].toFixed(4).padStart(7)}  ${r.same[i] ? 'yes' : 'no'}`);
  });
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Checks

class CheckFailed extends Error {}
function expect(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

async function expectRefused(call, code, words) {
  let response;
  try {
    response = await call();
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    const details = e.details || '';
    expect(e.code === code, `got ${codeName(e.code)} (${JSON.stringify(details)}), expected ${codeName(code)}`);
    expect(details.trim() !== '' && /^[\x20-\x7e]+$/.test(details), `details ${JSON.stringify(details)} are not a readable message`);
    const missing = words.filter((w) => !details.toLowerCase().includes(w.toLowerCase()));
    expect(missing.length === 0, `details ${JSON.stringify(details)} do not mention ${missing.join(', ')}`);
    return JSON.stringify(details);
  }
  throw new CheckFailed(`the call succeeded (${JSON.stringify(response).slice(0, 80)}), expected ${codeName(code)}`);
}

async function check(siam, health, seed) {
  const rng = makeRng(seed);
  let passed = 0, failed = 0;
  const run = async (name, fn) => {
    try {
      const detail = await fn();
      passed++;
      console.log(`PASS  ${name}${detail ? `: ${detail}` : ''}`);
    } catch (e) {
      failed++;
      if (e instanceof CheckFailed) console.log(`FAIL  ${name}: ${e.message}`);
      else if (e && e.code !== undefined) console.log(`FAIL  ${name}: unexpected ${codeName(e.code)}: ${e.details}`);
      else console.log(`FAIL  ${name}: ${e && e.stack ? e.stack : e}`);
    }
  };
  const INVALID = grpc.status.INVALID_ARGUMENT;

  // ---- Status ----
  let st = null;
  await run('Status: version X.Y.Z, margin > 0, label convention', async () => {
    const s = await unary(siam, 'Status', {});
    expect(/^\d+\.\d+\.\d+$/.test(s.version), `version ${JSON.stringify(s.version)} is not X.Y.Z`);
    expect(Number.isFinite(s.margin) && s.margin > 0, `margin ${s.margin} is not > 0`);
    expect(['similar', 'dissimilar'].includes(s.label_convention), `label_convention ${JSON.stringify(s.label_convention)} is not similar|dissimilar`);
    st = s;
    return `version ${s.version}, margin ${s.margin}, convention ${s.label_convention}`;
  });
  if (!st) {
    console.log('cannot go on without the server\'s Status');
    return 1;
  }
  const margin = st.margin, convention = st.label_convention;

  // ---- Similarity against distances computed here ----
  const similarity = async (batch, dim) => {
    const { left, right } = randomPairs(rng, batch, dim, margin / 2);
    const r = await unary(siam, 'Similarity', { dim, left, right });
    expect(r.distances.length === batch && r.scores.length === batch && r.same.length === batch,
      `${r.distances.length} distances, ${r.scores.length} scores, ${r.same.length} verdicts for ${batch} pairs`);
    expect(r.threshold === f32(margin / 2), `threshold ${r.threshold}, expected margin/2 = ${margin / 2} (Status margin ${margin})`);
    const L = rows(left, dim), R = rows(right, dim);
    const order = [];
    for (let i = 0; i < batch; i++) {
      const want = distance(L[i], R[i]);
      const got = r.distances[i], score = r.scores[i], same = r.same[i];
      expect(close(got, want, 1e-5, 1e-6), `pair ${i}: distance ${got}, computed ${want}`);
      expect(score >= 0 && score <= 1, `pair ${i}: score ${score} outside [0,1]`);
      if (L[i].every((x, k) => x === R[i][k])) expect(score === 1, `pair ${i} (identical): score ${score}, expected 1`);
      expect(same === (got <= r.threshold), `pair ${i}: same = ${same} at distance ${got}, threshold ${r.threshold}`);
      order.push([got, score]);
    }
    order.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < order.length; i++) {
      expect(order[i][1] <= order[i - 1][1], `score rises with distance: ${order[i - 1][1]} at ${order[i - 1][0]}, ${order[i][1]} at ${order[i][0]}`);
    }
    const nSame = r.same.filter(Boolean).length;
    return `${nSame} same, ${batch - nSame} different`;
  };
  for (const [batch, dim] of [[1, 1], [7, 1], [5, 3], [64, 3], [3, 128], [32, 128]]) {
    await run(`Similarity batch ${batch} dim ${dim}: distances, scores, same, threshold`, () => similarity(batch, dim));
  }

  await run('Similarity: score 1 for identical, 0.5 and same at D = threshold', async () => {
    const t = f32(margin / 2);
    const left = [0.25, -0.5, 1.0, 0.0, -0.5, 1.0, 0.25, -0.5, 1.0].map(f32);
    const right = [0.25, -0.5, 1.0, t, -0.5, 1.0, 0.25, -0.5, f32(1.0 + 1.5 * t)].map(f32);
    const r = await unary(siam, 'Similarity', { dim: 3, left, right });
    expect(r.distances[0] === 0 && r.scores[0] === 1 && r.same[0] === true,
      `identical: distance ${r.distances[0]}, score ${r.scores[0]}, same ${r.same[0]}; expected 0, 1, true`);
    expect(r.distances[1] === r.threshold, `distance ${r.distances[1]}, expected exactly the threshold ${r.threshold}`);
    expect(Math.abs(r.scores[1] - 0.5) <= 1e-6, `score at the threshold ${r.scores[1]}, expected 0.5`);
    expect(r.same[1] === true, 'same is false at distance == threshold, expected true (D <= t)');
    expect(r.same[2] === false && r.scores[2] < 0.5, `beyond the threshold: same ${r.same[2]}, score ${r.scores[2]}; expected false, < 0.5`);
    return `score ${r.scores[1]} at D = threshold = ${r.threshold}`;
  });

  // ---- bad requests: INVALID_ARGUMENT naming the field ----
  const zeros = (n) => new Array(n).fill(0);
  const ones = (n) => new Array(n).fill(1);
  const badSimilarity = [
    ['left and right of different lengths', ['right', '6', '4'], { dim: 2, left: zeros(4), right: zeros(6) }],
    ['length not a multiple of dim', ['left', 'dim', '5'], { dim: 3, left: zeros(5), right: zeros(5) }],
    ['no pairs', ['left', '0'], { dim: 4 }],
    ['NaN in left', ['left', 'nan'], { dim: 2, left: [0, 1, NaN, 0], right: zeros(4) }],
    ['Inf in right', ['right', 'inf'], { dim: 2, left: zeros(4), right: [0, 0, 0, -Infinity] }],
    ['dim 0', ['dim', '0'], { dim: 0, left: zeros(4), right: zeros(4) }],
    ['dim above the limit', ['dim', '4097'], { dim: 4097, left: zeros(4097), right: zeros(4097) }],
  ];
  for (const [name, words, request] of badSimilarity) {
    await run(`Similarity refuses ${name} (INVALID_ARGUMENT)`, () =>
      expectRefused(() => unary(siam, 'Similarity', request), INVALID, words));
  }

  const worker_id = 'similarity.js --check';
  const badTrain = [
    ['a label of 2', ['labels', '2'], { dim: 2, left: zeros(4), right: ones(4), labels: [1, 2] }],
    ['NaN in left', ['left', 'nan'], { dim: 2, left: [0, NaN, 0, 0], right: ones(4), labels: [1, 0] }],
    ['left of the wrong size', ['left', '3', '4'], { dim: 2, left: zeros(3), right: ones(4), labels: [1, 0] }],
    ['dim 0', ['dim', '0'], { dim: 0, left: zeros(4), right: ones(4), labels: [1, 0] }],
  ];
  for (const [name, words, batch] of badTrain) {
    await run(`Train refuses ${name} (INVALID_ARGUMENT)`, () =>
      expectRefused(() => train(siam, [{ ...batch, step: 1, worker_id }]), INVALID, words));
  }

  // ---- a good Train stream: two batches, answered in order, against the loss computed here ----
  await run(`Train: loss, distances, grad_left, grad_right = contrastive (m ${margin}, ${convention})`, async () => {
    const batches = [];
    for (const [step, B, dim] of [[7, 6, 3], [8, 9, 3]]) {
      const { left, right } = randomPairs(rng, B, dim, margin / 1.5);
      const labels = Array.from({ length: B }, () => rng.int(2));
      labels[0] = 1;
      labels[1] = 0; // both labels every batch
      batches.push({ dim, left, right, labels, step, worker_id });
    }
    const results = await train(siam, batches);
    expect(results.length === batches.length, `${results.length} answers to ${batches.length} batches`);
    const summary = [];
    batches.forEach((b, j) => {
      const res = results[j], B = b.labels.length, dim = b.dim;
      const want = contrastive(b.left, b.right, b.labels, dim, margin, convention);
      expect(Number(res.step) === b.step, `answer for step ${res.step}, expected ${b.step}`);
      expect(res.distances.length === B && res.grad_left.length === B * dim && res.grad_right.length === B * dim,
        `step ${b.step}: ${res.distances.length} distances, ${res.grad_left.length} + ${res.grad_right.length} gradient floats, expected ${B} and ${B * dim} each`);
      expect(close(res.loss, want.loss), `step ${b.step}: loss ${res.loss}, computed ${want.loss}`);
      for (let i = 0; i < B; i++) {
        expect(close(res.distances[i], want.dists[i], 1e-5, 1e-6), `step ${b.step} pair ${i}: distance ${res.distances[i]}, computed ${want.dists[i]}`);
        const s = convention === 'similar' ? b.labels[i] : 1 - b.labels[i];
        let diff = 0;
        for (let k = 0; k < dim; k++) diff = Math.max(diff, Math.abs(b.left[i * dim + k] - b.right[i * dim + k]));
        const scale = (((2 * s + (2 * (1 - s) * margin) / Math.max(want.dists[i], 1e-6)) / B) * diff);
        for (let k = i * dim; k < (i + 1) * dim; k++) {
          for (const [name, got, w] of [['grad_left', res.grad_left[k], want.gl[k]], ['grad_right', res.grad_right[k], want.gr[k]]]) {
            expect(Math.abs(got - w) <= 1e-5 * scale + 1e-12,
              `step ${b.step} pair ${i} (label ${b.labels[i]}, D ${want.dists[i].toPrecision(4)}): ${name}[${k}] = ${got}, computed ${w}`);
          }
        }
      }
      summary.push(`step ${res.step} loss ${res.loss.toPrecision(5)}`);
    });
    return summary.join(', ');
  });

  // ---- health ----
  for (const service of ['', 'siam.v1.Siamese']) {
    await run(`health Check '${service}': SERVING`, async () => {
      const r = await unary(health, 'Check', { service });
      expect(r.status === 'SERVING', `status ${r.status}, expected SERVING`);
      return r.status;
    });
  }

  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let services;
  try {
    services = loadServices(opts.proto);
  } catch (e) {
    process.stderr.write(`similarity.js: cannot load siam/v1/siam.proto from ${opts.proto}: ${e.message}\n`);
    return 1;
  }
  const creds = grpc.credentials.createInsecure();
  const siam = new services.Siamese(opts.server, creds);
  const health = new services.Health(opts.server, creds);
  try {
    await waitReady(siam, 5);
  } catch (e) {
    process.stderr.write(`similarity.js: cannot reach siam-server at ${opts.server} within 5 s ` +
      `(is it running? start it with: siam-server --listen ${opts.server})\n`);
    return 1;
  }
  try {
    return opts.check ? await check(siam, health, opts.seed) : await demo(siam, health, opts.server, opts.dim);
  } catch (e) {
    if (e && e.code !== undefined) {
      process.stderr.write(`similarity.js: call failed: ${codeName(e.code)}: ${e.details}\n`);
      return 1;
    }
    throw e;
  } finally {
    siam.close();
    health.close();
  }
}

main().then((rc) => { process.exitCode = rc; }, (e) => { process.stderr.write(`${e.stack || e}\n`); process.exitCode = 1; });
