'use strict';
// npm pack / npm publish: `node prepack.js copy` (prepack) copies the repository's
// proto/siam/v1/siam.proto and proto/grpc/health/v1/health.proto into ./proto so that the package
// carries them; `node prepack.js clean` (postpack) removes the copies again (./proto is ignored
// by git). Run from clients/node in the repository (or a copy laid out like it).
const fs = require('fs');
const path = require('path');

const FILES = ['siam/v1/siam.proto', 'grpc/health/v1/health.proto'];
const from = path.join(__dirname, '..', '..', 'proto');
const to = path.join(__dirname, 'proto');

if (process.argv[2] === 'copy') {
  for (const f of FILES) {
    fs.mkdirSync(path.dirname(path.join(to, f)), { recursive: true });
    fs.copyFileSync(path.join(from, f), path.join(to, f));
  }
} else if (process.argv[2] === 'clean') {
  fs.rmSync(to, { recursive: true, force: true });
} else {
  process.stderr.write('usage: node prepack.js copy|clean\n');
  process.exit(2);
}
