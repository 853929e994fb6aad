#!/usr/bin/env node
// siam-server's gRPC reflection seen by a reflection client someone else wrote
// (grpc-js-reflection-client, on @grpc/grpc-js): with no .proto file on this side, discover the
// services and methods, build stubs from the reflected descriptors, and call Status, Similarity
// and the health check through them. Run by tests/reflection_test.sh:
//
//   node reflection_client.js --server 127.0.0.1:PORT [--token-file F]
//
// With --token-file every call carries "authorization: Bearer <token>", and the client also
// checks that reflection without it is refused (UNAUTHENTICATED). One line per check, then
// "N passed, M failed"; exits 1 if any failed.
'use strict';

const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const { GrpcReflection } = require('grpc-js-reflection-client');

function parseArgs(argv) {
  const opts = { server: '', token: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--server') opts.server = argv[++i];
    else if (argv[i] === '--token-file') opts.token = fs.readFileSync(argv[++i], 'utf8').split('\n')[0].trim();
    else throw new Error(`unknown option ${argv[i]}`);
  }
  if (!opts.server) throw new Error('--server HOST:PORT is required');
  return opts;
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    const detail = await fn();
    passed++;
    console.log(`ok   ${name}${detail ? ` (${detail})` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message : e}`);
  }
}
function expect(cond, message) {
  if (!cond) throw new Error(message);
}
// a unary call on a grpc-js client as a promise
function unary(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    client[method](request, metadata, { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

const SERVICES = ['siam.v1.Siamese', 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection'];
const METHODS = ['Train', 'Similarity', 'SyncWeights', 'Status', 'TrainSet', 'Search', 'AddToGallery'];

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const creds = grpc.credentials.createInsecure();
  const metadata = new grpc.Metadata();
  if (opts.token) metadata.add('authorization', `Bearer ${opts.token}`);

  for (const version of ['v1alpha', 'v1']) {
    const reflection = new GrpcReflection(opts.server, creds, {}, version);
    await check(`${version}: listServices finds siam.v1.Siamese, health and reflection`, async () => {
      const names = await reflection.listServices('*', metadata);
      expect(JSON.stringify(names) === JSON.stringify(SERVICES), `got ${JSON.stringify(names)}`);
      return names.join(', ');
    });
    await check(`${version}: listMethods siam.v1.Siamese`, async () => {
      const names = (await reflection.listMethods('siam.v1.Siamese', metadata)).map((m) => m.name);
      expect(JSON.stringify(names) === JSON.stringify(METHODS), `got ${JSON.stringify(names)}`);
      return names.join(', ');
    });
    await check(`${version}: an unknown symbol is refused with the server's NOT_FOUND message`, async () => {
      try {
        await reflection.getDescriptorBySymbol('siam.v1.Nope', metadata);
      } catch (e) {
        expect(/symbol 'siam.v1.Nope' not found/.test(e.message), `message: ${e.message}`);
        return e.message;
      }
      throw new Error('siam.v1.Nope was found');
    });
  }

  // stubs from the reflected descriptors alone (getPackageObject: @grpc/proto-loader's
  // fromDescriptorSet under the hood): no .proto here
  const reflection = new GrpcReflection(opts.server, creds, {}, 'v1');
  const options = { keepCase: true, longs: String, enums: String, defaults: true };
  const siamPkg = (await reflection.getDescriptorBySymbol('siam.v1.Siamese', metadata)).getPackageObject(options);
  const healthPkg = (await reflection.getDescriptorBySymbol('grpc.health.v1.Health', metadata)).getPackageObject(options);
  const siam = new siamPkg.siam.v1.Siamese(opts.server, creds);
  const health = new healthPkg.grpc.health.v1.Health(opts.server, creds);

  let threshold = 0;
  await check('Status through the reflected stub', async () => {
    const st = await unary(siam, 'Status', {}, metadata);
    expect(/^\d+\.\d+\.\d+$/.test(st.version), `version ${st.version}`);
    expect(st.margin > 0, `margin ${st.margin}`);
    threshold = st.margin / 2;
    return `version ${st.version}, margin ${st.margin}, label convention ${st.label_convention}`;
  });
  await check('Similarity of embeddings through the reflected stub, against distances computed here', async () => {
    const left = [0, 0, 1, 2, 0.5, -1];
    const right = [3, 4, 1, 2, 0.5, -0.75];
    const r = await unary(siam, 'Similarity', { dim: 2, left, right }, metadata);
    const want = [0, 1, 2].map((i) => Math.hypot(left[2 * i] - right[2 * i], left[2 * i + 1] - right[2 * i + 1]));
    expect(r.distances.length === 3, `${r.distances.length} distances`);
    want.forEach((d, i) => expect(Math.abs(r.distances[i] - d) <= 1e-6 * Math.max(1, d),
      `distance ${i}: ${r.distances[i]}, computed ${d}`));
    expect(Math.abs(r.threshold - threshold) < 1e-7, `threshold ${r.threshold}, Status says ${threshold}`);
    want.forEach((d, i) => {
      const score = 1 / (1 + (d / r.threshold) ** 2);
      expect(Math.abs(r.scores[i] - score) < 1e-6, `score ${i}: ${r.scores[i]}, computed ${score}`);
      expect(r.same[i] === (d <= r.threshold), `same ${i}: ${r.same[i]} at ${d}`);
    });
    return `distances ${r.distances.map((d) => d.toFixed(4)).join(', ')}`;
  });
  await check('Similarity with a bad dim: INVALID_ARGUMENT with the server\'s message', async () => {
    try {
      await unary(siam, 'Similarity', { dim: 3, left: [1, 2], right: [1, 2] }, metadata);
    } catch (e) {
      expect(e.code === grpc.status.INVALID_ARGUMENT, `code ${e.code}: ${e.details}`);
      expect(/left/.test(e.details), `details ${e.details}`);
      return e.details;
    }
    throw new Error('accepted');
  });
  await check('health Check through the reflected stub: SERVING', async () => {
    const r = await unary(health, 'Check', { service: 'siam.v1.Siamese' }, metadata);
    expect(r.status === 'SERVING', `status ${r.status}`);
    return r.status;
  });

  if (opts.token) {
    await check('reflection without the token: UNAUTHENTICATED', async () => {
      try {
        await new GrpcReflection(opts.server, creds, {}, 'v1').listServices('*', new grpc.Metadata());
      } catch (e) {
        expect(/UNAUTHENTICATED/.test(e.message), `message: ${e.message}`);
        expect(!e.message.includes(opts.token), 'the message holds the token');
        return 'refused';
      }
      throw new Error('answered without a token');
    });
  }
  siam.close();
  health.close();
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then((rc) => process.exit(rc), (e) => {
  console.log(`FAIL reflection_client.js: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
