#!/usr/bin/env node
// Few-shot identification with siam's Node client library (clients/node): five images of one
// Fashion-MNIST class go into the server's gallery under a new label (addToGallery), then other
// images of that class, and of another class for contrast, are searched (search) and their
// predicted labels printed. No retraining: the server embeds the five with its model.
//
//   (cd clients/node && npm ci) && (cd examples/node && npm ci)
//   node examples/node/few_shot.js --server 127.0.0.1:50051
//
// The server needs a model (siam-server --resume CKPT, --model, or a worker that joined); its
// gallery may be empty or hold the training set (siam-server --gallery ...), against which the
// new label competes. Options: --class N (0-9, default 8 Bag), --label NAME (default
// "new-<class>"), --shots N (default 5), --data DIR (the Fashion-MNIST IDX files), and the TLS and
// token options of similarity.js. Exit status: 0, 1 when a call fails (the error's code and the
// server's message on stderr), 2 on bad usage.
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { parseArgs } = require('util');
const { Client, SiamError, Unavailable } = require('siam-client');

const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const USAGE = 'Usage: node few_shot.js [--server HOST:PORT] [--class N] [--label NAME] [--shots N] [--data DIR]\n' +
  '         [--tls-ca PEM [--tls-cert PEM --tls-key PEM] [--tls-server-name NAME]] [--auth-token-file PATH]\n';

/** A Fashion-MNIST IDX file (gzip'd or not): { dims, data }. */
function readIdx(dir, name) {
  for (const file of [path.join(dir, `${name}.gz`), path.join(dir, name)]) {
    if (!fs.existsSync(file)) continue;
    let raw = fs.readFileSync(file);
    if (file.endsWith('.gz')) raw = zlib.gunzipSync(raw);
    const nd = raw[3];
    const dims = Array.from({ length: nd }, (_, i) => raw.readUInt32BE(4 + 4 * i));
    return { dims, data: raw.subarray(4 + 4 * nd) };
  }
  throw new Error(`${name}(.gz) not found in ${dir}: apt-get install dataset-fashion-mnist, or give --data DIR`);
}

async function main() {
  let args;
  try {
    args = parseArgs({
      options: {
        server: { type: 'string', default: '127.0.0.1:50051' }, class: { type: 'string', default: '8' },
        label: { type: 'string' }, shots: { type: 'string', default: '5' },
        data: { type: 'string', default: process.env.SIAM_DATA_DIR || '/usr/share/datasets/fashion-mnist' },
        'tls-ca': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
        'tls-server-name': { type: 'string' }, 'auth-token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    process.stderr.write(`few_shot.js: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (args.help) return process.stdout.write(USAGE) && 0;
  const cls = Number(args.class);
  const shots = Number(args.shots);
  if (!Number.isInteger(cls) || cls < 0 || cls > 9 || !Number.isInteger(shots) || shots < 1 || shots > 100) {
    process.stderr.write('few_shot.js: --class is 0..9 and --shots 1..100\n');
    return 2;
  }
  const label = args.label || `new-${CLASSES[cls]}`;
  let images;
  let classes;
  try {
    images = readIdx(args.data, 't10k-images-idx3-ubyte');
    classes = readIdx(args.data, 't10k-labels-idx1-ubyte').data;
  } catch (e) {
    process.stderr.write(`few_shot.js: ${e.message}\n`);
    return 2;
  }
  const size = images.dims[1] * images.dims[2];
  const image = (i) => images.data.subarray(i * size, (i + 1) * size);
  const indices = (c) => [...classes.keys()].filter((i) => classes[i] === c);
  const mine = indices(cls);
  const support = mine.slice(0, shots);
  const queries = mine.slice(shots, shots + 5);
  const contrast = indices((cls + 1) % 10).slice(0, 3);
  let siam;
  try {
    const token = args['auth-token-file'] && fs.readFileSync(args['auth-token-file'], 'utf8').split('\n')[0].trim();
    siam = new Client(args.server, { token: token || undefined, tlsCa: args['tls-ca'], tlsCert: args['tls-cert'],
      tlsKey: args['tls-key'], serverName: args['tls-server-name'], timeout: 30 });
  } catch (e) {
    process.stderr.write(`few_shot.js: ${e.message}\n`);
    return 2;
  }
  try {
    const st = await siam.status();
    console.log(`siam-server at ${args.server}: model round ${st.round}, gallery of ${st.gallerySize} items`);
    const added = await siam.addToGallery({ images: support.map(image), labels: label });
    console.log(`added ${added.ids.length} images of ${CLASSES[cls]} (test images ${support.join(', ')}) as "${label}": ` +
      `ids ${added.ids[0]}..${added.ids[added.ids.length - 1]}, gallery of ${added.gallerySize} items`);
    const asked = [...queries, ...contrast];
    const r = await siam.search({ images: asked.map(image), k: 5 });
    console.log(`search (k=5, model round ${r.modelRound}):`);
    asked.forEach((i, q) => {
      const res = r.results[q];
      const nearest = res.matches[0];
      console.log(`  test image ${String(i).padStart(5)} (${CLASSES[classes[i]].padEnd(11)}) -> ${res.predictedLabel} ` +
        `(confidence ${res.confidence.toFixed(2)}; nearest id ${nearest.id} at ${nearest.distance.toFixed(3)})`);
    });
    const hits = r.results.slice(0, queries.length).filter((res) => res.predictedLabel === label).length;
    console.log(`${hits} of ${queries.length} other ${CLASSES[cls]} images predicted "${label}"`);
    return 0;
  } catch (e) {
    if (!(e instanceof SiamError)) throw e;
    if (e instanceof Unavailable) process.stderr.write(`few_shot.js: cannot reach siam-server at ${args.server} (is it running?): `);
    else process.stderr.write('few_shot.js: ');
    process.stderr.write(`${e.codeName}: ${e.message}\n`);
    return 1;
  } finally {
    siam.close();
  }
}

main().then((rc) => { process.exitCode = rc; }, (e) => { process.stderr.write(`${e.stack || e}\n`); process.exitCode = 1; });
