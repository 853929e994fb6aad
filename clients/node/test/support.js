'use strict';
// Shared by the tests (not a test file: `npm test` runs test/*.test.js). The servers come from
// the environment; tests/node_client_test.sh starts them:
//
//   SIAM_TEST_SERVER        plain, --max-message-mb 1, no model
//   SIAM_TEST_MODEL_SERVER  --model mlp (image Similarity works)
//   SIAM_TEST_GALLERY_SERVER  --model mlp --gallery-max 40, its gallery empty at the start
//   SIAM_TEST_TOKEN_SERVER  --auth-token-file; the token in SIAM_TEST_TOKEN
//   SIAM_TEST_TLS_SERVER    TLS (+ the same token); CA in SIAM_TEST_TLS_CA, certificate for
//                           "localhost" and 127.0.0.1
//   SIAM_TEST_MTLS_SERVER   mutual TLS (--tls-client-ca); client certificate and key in
//                           SIAM_TEST_TLS_CLIENT_CERT and SIAM_TEST_TLS_CLIENT_KEY
//   SIAM_TEST_OTHER_CA      a CA that signed none of the servers' certificates
//   SIAM_CLIENT_MODULE      the package to test (default: this directory, ..); the suite runs
//                           once in place and once against the package installed from npm pack
//
// A group of tests whose server is not given is skipped, naming the variable.
const path = require('path');
const { createRequire } = require('module');

const MODULE = process.env.SIAM_CLIENT_MODULE ? path.resolve(process.env.SIAM_CLIENT_MODULE) : path.join(__dirname, '..');
const siam = require(MODULE);
// @grpc/grpc-js and @grpc/proto-loader as the package under test resolves them, for raw calls
const moduleRequire = createRequire(require.resolve(MODULE));
const protoLoader = moduleRequire('@grpc/proto-loader');
const { grpc } = siam;

const env = (name) => process.env[name] || '';
const skipUnless = (...names) => {
  const missing = names.filter((n) => !env(n));
  return missing.length ? `${missing.join(', ')} not set` : false;
};

const f32 = Math.fround;

/** Euclidean distance in double precision of the float32 values the wire carries. */
function euclid(a, b) {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += (f32(a[k]) - f32(b[k])) ** 2;
  return Math.sqrt(s);
}

const close = (got, want, rel = 1e-5, abs = 1e-6) =>
  Math.abs(got - want) <= Math.max(rel * Math.max(Math.abs(got), Math.abs(want)), abs);

/** mulberry32: a small seeded generator, so the tests are reproducible. */
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

const rowsOf = (rng, n, dim, scale = 1) =>
  Array.from({ length: n }, () => Array.from({ length: dim }, () => rng.uniform(-scale, scale)));

/** Raw @grpc/grpc-js stubs from the package's .proto files, field names as in the .proto. */
function rawServices() {
  const def = protoLoader.loadSync(['siam/v1/siam.proto', 'grpc/health/v1/health.proto'],
    { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [siam.protoDir()] });
  const pkg = grpc.loadPackageDefinition(def);
  return { Siamese: pkg.siam.v1.Siamese, Health: pkg.grpc.health.v1.Health, definition: def };
}

/** A unary call on a raw stub as a promise; rejects with the grpc-js ServiceError. */
function rawUnary(stub, method, request, metadata = new grpc.Metadata(), seconds = 10) {
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, { deadline: Date.now() + seconds * 1000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** The code and details the server answers a raw Similarity request with ([0, ''] when it succeeds). */
async function rawSimilarity(target, request) {
  const { Siamese } = rawServices();
  const stub = new Siamese(target, grpc.credentials.createInsecure());
  try {
    await rawUnary(stub, 'Similarity', request);
    return [0, ''];
  } catch (e) {
    return [e.code, e.details];
  } finally {
    stub.close();
  }
}

const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

module.exports = { siam, grpc, MODULE, env, skipUnless, f32, euclid, close, makeRng, rowsOf, rawServices, rawUnary, rawSimilarity, camel };
