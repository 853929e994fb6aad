#!/usr/bin/env node
// Call siam-server from Node.js with siam's client library (clients/node, require('siam-client')):
// the server's Status and health, then the distances, scores and same/different verdicts of a
// few pairs of embeddings.
//
//   (cd clients/node && npm ci) && (cd examples/node && npm ci)
//   node examples/node/similarity.js --server 127.0.0.1:50051
//
// Options: --dim N (dimension of the demo pairs), --tls-ca PEM [--tls-cert PEM --tls-key PEM]
// [--tls-server-name NAME] for TLS, --auth-token-file PATH for a server with a token. Exit status:
// 0, 1 when a call fails (the error's code and the server's message on stderr), 2 on bad usage.
'use strict';

const fs = require('fs');
const { parseArgs } = require('util');
const { Client, SiamError, Unavailable } = require('siam-client');

const USAGE = 'Usage: node similarity.js [--server HOST:PORT] [--dim N] [--tls-ca PEM [--tls-cert PEM --tls-key PEM]\n' +
  '         [--tls-server-name NAME]] [--auth-token-file PATH]\n';

async function main() {
  let args;
  try {
    args = parseArgs({
      options: {
        server: { type: 'string', default: '127.0.0.1:50051' }, dim: { type: 'string', default: '4' },
        'tls-ca': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
        'tls-server-name': { type: 'string' }, 'auth-token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`similarity.js: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (args.help) return process.stdout.write(USAGE) && 0;
  const dim = Number(args.dim);
  if (!Number.isInteger(dim) || dim < 1 || dim > 4096) {
    process.stderr.write(`similarity.js: --dim ${args.dim} is out of range 1..4096\n`);
    return 2;
  }
  let siam;
  try {
    const token = args['auth-token-file'] && fs.readFileSync(args['auth-token-file'], 'utf8').split('\n')[0].trim();
    siam = new Client(args.server, { token: token || undefined, tlsCa: args['tls-ca'], tlsCert: args['tls-cert'],
      tlsKey: args['tls-key'], serverName: args['tls-server-name'], timeout: 10 });
  } catch (e) { // bad options: a token with a space, a missing TLS file, a key without a certificate
    process.stderr.write(`similarity.js: ${e.message}\n`);
    return 2;
  }
  try {
    const st = await siam.status();
    console.log(`siam-server ${st.version} at ${args.server}: margin ${st.margin}, label 1 marks ` +
      `${st.labelConvention} pairs, global step ${st.globalStep}, ${st.workers.length} worker(s) seen`);
    console.log(`health: ${await siam.health()}`);
    // identical, close, at the default threshold (margin / 2), far
    const base = Array.from({ length: dim }, (_, k) => 0.1 * k);
    const moved = (d) => base.map((x) => x + d / Math.sqrt(dim));
    const pairs = { identical: base, close: moved(0.1), 'at margin/2': [st.margin / 2, ...base.slice(1)], far: moved(2.0) };
    const r = await siam.similarity({ embeddings: [Object.values(pairs).map(() => base), Object.values(pairs)] });
    console.log(`Similarity of ${r.distances.length} pairs of ${dim}-d embeddings (threshold ${r.threshold}):`);
    console.log(`  ${'pair'.padEnd(18)} ${'distance'.padStart(9)} ${'score'.padStart(7)}  same`);
    Object.keys(pairs).forEach((name, i) => console.log(`  ${name.padEnd(18)} ${r.distances[i].toFixed(4).padStart(9)} ` +
      `${r.scores[i].toFixed(4).padStart(7)}  ${r.same[i] ? 'yes' : 'no'}`));
    return 0;
  } catch (e) {
    if (!(e instanceof SiamError)) throw e;
    if (e instanceof Unavailable) process.stderr.write(`similarity.js: cannot reach siam-server at ${args.server} (is it running?): `);
    else process.stderr.write('similarity.js: ');
    process.stderr.write(`${e.codeName}: ${e.message}\n`);
    return 1;
  } finally {
    siam.close();
  }
}

main().then((rc) => { process.exitCode = rc; }, (e) => { process.stderr.write(`${e.stack || e}\n`); process.exitCode = 1; });
