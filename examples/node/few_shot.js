#!/usr/bin/env node
// Few-shot identification with siam's Node client library (clients/node): the server learns two
// classes from five images each, without retraining. Five test images of one Fashion-MNIST class
// and five of another go into the server's gallery under new labels (addToGallery); five other
// images of each class are then searched (search) and their predicted labels printed.
//
//   (cd clients/node && npm ci) && (cd examples/node && npm ci)
//   node examples/node/few_shot.js --server 127.0.0.1:50051
//
// The server needs a model (siam-server --resume CKPT, --model, or a worker that joined). With an
// empty gallery the two new labels compete with each other; a gallery that already holds these
// classes (siam-server --gallery with the training set) answers with its own labels for them ("8"
// for Bag) where its items are nearer. Options: --class N and --contrast N (0-9, default 8 Bag and
// 9 Ankle boot), --shots N (default 5), --data DIR (the Fashion-MNIST IDX files), and the TLS and
// token options of similarity.js. Exit status: 0, 1 when a call fails (the error's code and the
// server's message on stderr), 2 on bad usage.
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { parseArgs } = require('util');
const { Client, SiamError, Unavailable } = require('siam-client');

const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const USAGE = 'Usage: node few_shot.js [--server HOST:PORT] [--class N] [--contrast N] [--shots N] [--data DIR]\n' +
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
        contrast: { type: 'string', default: '9' }, shots: { type: 'string', default: '5' },
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
  const taught = [Number(args.class), Number(args.contrast)];
  const shots = Number(args.shots);
  if (!taught.every((c) => Number.isInteger(c) && c >= 0 && c <= 9) || taught[0] === taught[1] ||
      !Number.isInteger(shots) || shots < 1 || shots > 100) {
    process.stderr.write('few_shot.js: --class and --contrast are two different classes 0..9, --shots is 1..100\n');
    return 2;
  }
  const label = (c) => `new-${CLASSES[c]}`;
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
    for (const c of taught) { // five images of each class, under a label the gallery never had
      const support = indices(c).slice(0, shots);
      const added = await siam.addToGallery({ images: support.map(image), labels: label(c) });
      console.log(`added ${added.ids.length} images of ${CLASSES[c]} (test images ${support.join(', ')}) as "${label(c)}": ` +
        `ids ${added.ids[0]}..${added.ids[added.ids.length - 1]}, gallery of ${added.gallerySize} items`);
    }
    const asked = taught.flatMap((c) => indices(c).slice(shots, shots + 5));
    const r = await siam.search({ images: asked.map(image), k: 5 });
    console.log(`search of five other images of each (k=5, model round ${r.modelRound}):`);
    asked.forEach((i, q) => {
      const res = r.results[q];
      const nearest = res.matches[0];
      console.log(`  test image ${String(i).padStart(5)} (${CLASSES[classes[i]].padEnd(11)}) -> ${res.predictedLabel} ` +
        `(confidence ${res.confidence.toFixed(2)}; nearest id ${nearest.id} at ${nearest.distance.toFixed(3)})`);
    });
    for (const c of taught) {
      const hits = asked.filter((i, q) => classes[i] === c && r.results[q].predictedLabel === label(c)).length;
      console.log(`${CLASSES[c]}: ${hits} of 5 predicted "${label(c)}"`);
    }
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
