'use strict';
/**
 * siam-client: call siam-server from Node.js.
 *
 *     const { Client } = require('siam-client');
 *     const siam = new Client('127.0.0.1:50051');
 *     console.log((await siam.status()).version, await siam.health());      // 0.1.0 SERVING
 *     console.log((await siam.similarity({ embeddings: [[0, 0], [3, 4]] })).distances); // [5]
 *     await siam.addToGallery({ images: fiveImages, labels: 'my-class' });  // few-shot
 *     console.log((await siam.search({ images: query, k: 5 })).results[0].predictedLabel);
 *     siam.close();
 *
 * Every call returns a promise of plain objects (numbers, strings, arrays); a failed call
 * rejects with a {@link SiamError} subclass per gRPC code ({@link InvalidArgument},
 * {@link Unauthenticated}, {@link Unavailable}, {@link DeadlineExceeded}, ...) carrying the
 * numeric `.code`, its `.codeName` and the server's message (`.details`, also `.message`).
 * Built on @grpc/grpc-js and @grpc/proto-loader; the .proto files are read at run time (the
 * package carries copies; in the repository they are read from proto/).
 *
 * Arguments this side refuses before any call: TypeError for a wrong type or shape, RangeError
 * for a value out of its domain (a token with a space, a pixel of 300, a timeout of 0).
 * @module siam-client
 */

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

/**
 * Bytes of one image: a 28x28 Fashion-MNIST picture, grey levels 0..255, row-major. Models of
 * another input shape say theirs in `(await status()).inputShape` ("HxWxC": H*W*C bytes).
 */
const IMAGE_BYTES = 28 * 28;

const PROTO_FILES = ['siam/v1/siam.proto', 'grpc/health/v1/health.proto'];

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * A call to siam-server failed. The subclass names the gRPC code (InvalidArgument for
 * INVALID_ARGUMENT, ...); codes without one (none today) give a plain SiamError.
 */
class SiamError extends Error {
  /**
   * @param {number} code the gRPC status code (grpc.status: 3 is INVALID_ARGUMENT)
   * @param {string} details the status message; siam-server's names the field and the value
   * @param {string} [method] the RPC, e.g. "Similarity"
   * @param {Error} [cause] the @grpc/grpc-js ServiceError, for its metadata
   */
  constructor(code, details, method = '', cause = undefined) {
    const codeName = grpc.status[code] || `CODE_${code}`;
    super(details || codeName, cause ? { cause } : undefined);
    /** @type {string} the class's name: "InvalidArgument", ... */
    this.name = this.constructor.name;
    /** @type {number} the gRPC status code */
    this.code = code;
    /** @type {string} the code's name: "INVALID_ARGUMENT", ... */
    this.codeName = codeName;
    /** @type {string} the server's (or gRPC's) message; may be "" (then .message is codeName) */
    this.details = details || '';
    /** @type {string} the RPC that failed: "Similarity", "Status", "Check" */
    this.method = method;
  }
}

/** CANCELLED: the call was cancelled. */
class Cancelled extends SiamError {}
/** UNKNOWN. */
class Unknown extends SiamError {}
/** INVALID_ARGUMENT: a malformed request (sizes, dim, NaN/Inf, image lengths). */
class InvalidArgument extends SiamError {}
/** DEADLINE_EXCEEDED: no answer within the timeout. */
class DeadlineExceeded extends SiamError {}
/** NOT_FOUND, e.g. a health check of a service the server does not have. */
class NotFound extends SiamError {}
/** ALREADY_EXISTS: two workers with one name in a round. */
class AlreadyExists extends SiamError {}
/** PERMISSION_DENIED. */
class PermissionDenied extends SiamError {}
/** RESOURCE_EXHAUSTED: a message above the server's size limit, or a table full. */
class ResourceExhausted extends SiamError {}
/** FAILED_PRECONDITION, e.g. image Similarity before the server has a model. */
class FailedPrecondition extends SiamError {}
/** ABORTED. */
class Aborted extends SiamError {}
/** OUT_OF_RANGE. */
class OutOfRange extends SiamError {}
/** UNIMPLEMENTED: a method this server does not have (an older server). */
class Unimplemented extends SiamError {}
/** INTERNAL. */
class Internal extends SiamError {}
/** UNAVAILABLE: no server there, shutting down, or a TLS handshake that failed. */
class Unavailable extends SiamError {}
/** DATA_LOSS. */
class DataLoss extends SiamError {}
/** UNAUTHENTICATED: no bearer token, or the wrong one. */
class Unauthenticated extends SiamError {}

const ERRORS = {
  Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
  PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented,
  Internal, Unavailable, DataLoss, Unauthenticated,
};
const BY_CODE = new Map();
for (const cls of Object.values(ERRORS)) {
  const name = cls.name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase(); // InvalidArgument -> INVALID_ARGUMENT
  BY_CODE.set(grpc.status[name], cls);
}

/**
 * The SiamError subclass instance for a gRPC status code.
 * @param {number} code
 * @param {string} details
 * @param {string} [method]
 * @param {Error} [cause]
 * @returns {SiamError}
 */
function errorFor(code, details, method = '', cause = undefined) {
  const Cls = BY_CODE.get(code) || SiamError;
  return new Cls(code, details, method, cause);
}

// ---------------------------------------------------------------------------------------------
// The .proto files

let services = null;

/** The directory holding siam/v1/siam.proto and grpc/health/v1/health.proto. */
function protoDir() {
  const has = (dir) => PROTO_FILES.every((f) => fs.existsSync(path.join(dir, f)));
  const env = process.env.SIAM_PROTO_DIR;
  if (env) {
    if (!has(env)) throw new Error(`SIAM_PROTO_DIR=${env} does not hold ${PROTO_FILES.join(' and ')}`);
    return env;
  }
  // the package's copies (npm pack puts them there), else the repository's proto/
  for (const dir of [path.join(__dirname, 'proto'), path.join(__dirname, '..', '..', 'proto')]) {
    if (has(dir)) return dir;
  }
  throw new Error(`siam-client: cannot find ${PROTO_FILES.join(' and ')} in ${path.join(__dirname, 'proto')} ` +
    'or in the repository\'s proto/: install the package from npm pack, or set SIAM_PROTO_DIR');
}

function loadServices() {
  if (!services) {
    const dir = protoDir();
    const def = protoLoader.loadSync(PROTO_FILES, {
      keepCase: false, longs: Number, enums: String, defaults: true, arrays: true, includeDirs: [dir],
    });
    const pkg = grpc.loadPackageDefinition(def);
    services = { Siamese: pkg.siam.v1.Siamese, Health: pkg.grpc.health.v1.Health, definition: def, dir };
  }
  return services;
}

// ---------------------------------------------------------------------------------------------
// Arguments

function pem(value, what) {
  if (value === undefined || value === null) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value !== 'string' || value === '') throw new TypeError(`${what} must be a path or the PEM bytes (a Buffer)`);
  try {
    return fs.readFileSync(value);
  } catch (e) {
    throw new Error(`${what} ${value}: ${e.message}`);
  }
}

function seconds(value, what) {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${what} must be a positive number of seconds, got ${String(value)}`);
  }
  return value;
}

const isRow = (x) => Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView));

// Every number of x (an array or typed array, rows nested to any depth), in order.
function flatten(x, what, out) {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (typeof v === 'number') out.push(v);
    else if (isRow(v)) flatten(v, `${what}[${i}]`, out);
    else throw new TypeError(`${what}[${i}] is ${v === null ? 'null' : typeof v}, not a number`);
  }
  return out;
}

/**
 * [flat numbers, dim] of one side: one embedding (numbers: one pair) or rows (a batch). With dim
 * given the values are flattened and sent as they are: the server checks the sizes.
 */
function embeddingSide(x, what, dim) {
  if (!isRow(x)) throw new TypeError(`${what} must be an array or a typed array (one embedding or rows of them)`);
  if (dim === undefined) {
    dim = x.length > 0 && isRow(x[0]) ? x[0].length : x.length;
  }
  return [flatten(x, what, []), dim];
}

/**
 * Raw grey levels: Uint8Array (Buffer) as it is, an array of images (each a Buffer, a Uint8Array
 * or numbers), else numbers 0..255 (nested to any depth).
 */
function imageSide(x, what) {
  if (x instanceof Uint8Array || x instanceof Uint8ClampedArray) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (!isRow(x)) throw new TypeError(`${what} must be a Buffer, a Uint8Array or an array of grey levels 0..255`);
  if (Array.isArray(x) && x.some((v) => v instanceof Uint8Array || v instanceof Uint8ClampedArray || v instanceof ArrayBuffer)) {
    return Buffer.concat(x.map((v, i) => imageSide(v, `${what}[${i}]`)));
  }
  const flat = flatten(x, what, []);
  flat.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 0 || p > 255) {
      throw new RangeError(`${what}: pixel ${i} is ${p}; images are grey levels 0..255 (integers)`);
    }
  });
  return Buffer.from(flat);
}

function pair(value, what) {
  if (!Array.isArray(value) || value.length !== 2) throw new TypeError(`${what} is a pair: [left, right]`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Client

/**
 * @typedef {object} ClientOptions
 * @property {string} [token] sent as "authorization: Bearer <token>" with every call
 *   (siam-server --auth-token-file); kept private, never in an error
 * @property {string|Buffer} [tlsCa] turns TLS on: the CA certificate(s) the server's certificate
 *   must be signed by (a path, or the PEM bytes)
 * @property {string|Buffer} [tlsCert] this client's certificate, for mutual TLS (with tlsKey)
 * @property {string|Buffer} [tlsKey] this client's private key, for mutual TLS (with tlsCert)
 * @property {string} [serverName] the name the server's certificate must hold, instead of the
 *   target's host
 * @property {number} [timeout=10] seconds each call may take (its gRPC deadline); every method
 *   takes its own too
 * @property {number} [maxMessageMb=16] largest message either way (siam-server's --max-message-mb)
 * @property {object} [channelOptions] further @grpc/grpc-js channel options
 */

/**
 * @typedef {object} SimilarityResult
 * @property {number[]} distances Euclidean distance of every pair, in the order sent
 * @property {number[]} scores in [0, 1]: 1 at distance 0, 0.5 at the threshold, falling with distance
 * @property {boolean[]} same distance <= threshold
 * @property {number} threshold the distance threshold used (margin / 2 by default)
 */

/**
 * @typedef {object} WorkerStatus
 * @property {string} workerId
 * @property {number} lastSeenSecondsAgo
 * @property {number} pairsTrained
 * @property {boolean} live
 * @property {number} lastRound
 */

/**
 * The server's StatusResponse, every field, named as in siam.proto in lowerCamelCase (the proto3
 * JSON names); uint64 counters as numbers. proto/siam/v1/siam.proto documents each.
 * @typedef {object} Status
 * @property {string} version
 * @property {number} margin
 * @property {string} labelConvention "similar" or "dissimilar"
 * @property {string} modelSpec "" before the server has a model
 * @property {number} round
 * @property {number} globalStep
 * @property {WorkerStatus[]} workers
 * @property {number} minWorkers
 * @property {number} joinedWorkers
 * @property {string} waiting
 * @property {number} syncTimeoutSeconds
 * @property {string} checkpointPath
 * @property {number} checkpointRound
 * @property {number} checkpointUnixTime
 * @property {number} checkpointFailures
 * @property {number} checkpointFailedRound
 * @property {number} checkpointFailedUnixTime
 * @property {string} checkpointError
 * @property {string} loss the TrainSet loss
 * @property {number} gallerySize items in the gallery Search answers from
 * @property {number} galleryRound the model round the gallery is embedded with
 * @property {string} inputShape the model's input shape "HxWxC" ("" before there is a model)
 * @property {number} galleryEmbedded items of the gallery version Search answers from (less than
 *   gallerySize while a gallery loaded at start is embedded the first time)
 * @property {string[]} wireEncodings the wire encodings Train and TrainSet accept ("fp32", "fp16",
 *   "bf16", "int8")
 * @property {RpcTraffic[]} traffic what the server moved per RPC since it started
 * @property {number} trafficSeconds seconds since it started counting
 * @property {string[]} syncEncodings the encodings SyncWeights accepts for the parameters
 */

/**
 * One RPC's traffic seen from the server: calls, and the messages and their bytes as serialized
 * protobuf (not gRPC's, HTTP/2's or TCP's own bytes).
 * @typedef {object} RpcTraffic
 * @property {string} method the full path, e.g. "/siam.v1.Siamese/Train"
 * @property {number} calls
 * @property {number} messagesReceived
 * @property {number} bytesReceived
 * @property {number} messagesSent
 * @property {number} bytesSent
 */

/**
 * @typedef {object} SearchMatch
 * @property {number} id the gallery item's id
 * @property {string} label its label (a class number such as "7", or a name)
 * @property {number} distance Euclidean distance between the query's and the item's embeddings
 * @property {number} score in [0, 1]: 1 at distance 0, 0.5 at the server's threshold
 */

/**
 * @typedef {object} SearchResult
 * @property {SearchMatch[]} matches the nearest gallery items, nearest first
 * @property {string} predictedLabel the label of the distance-weighted vote of the matches
 * @property {number} confidence the predicted label's share of the vote, in (0, 1]
 */

/**
 * @typedef {object} SearchResults
 * @property {SearchResult[]} results one per query, in the order sent
 * @property {number} modelRound the one model round the gallery and the queries were embedded with
 * @property {number} gallerySize items in the gallery version searched
 */

/**
 * @typedef {object} GalleryAddResult
 * @property {number[]} ids the ids given to the images, in order
 * @property {number} gallerySize items in the gallery after the call
 * @property {number} modelRound the model round the gallery is embedded with
 */

/** A connection to one siam-server. `close()` it when done. */
class Client {
  #siam;
  #health;
  #token;

  /**
   * @param {string} target "host:port"
   * @param {ClientOptions} [options]
   */
  constructor(target, options = {}) {
    if (typeof target !== 'string' || target === '') throw new TypeError("target must be 'host:port'");
    const { token, tlsCa, tlsCert, tlsKey, serverName, timeout = 10, maxMessageMb = 16, channelOptions = {} } = options;
    const known = ['token', 'tlsCa', 'tlsCert', 'tlsKey', 'serverName', 'timeout', 'maxMessageMb', 'channelOptions'];
    const unknown = Object.keys(options).filter((k) => !known.includes(k));
    if (unknown.length) throw new TypeError(`unknown option(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
    if ((tlsCert == null) !== (tlsKey == null)) throw new TypeError('mutual TLS needs both tlsCert and tlsKey');
    if ((tlsCert != null || serverName) && tlsCa == null) throw new TypeError('tlsCert, tlsKey and serverName need tlsCa (TLS)');
    if (token != null && (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token))) {
      throw new RangeError('token must be 1 or more printable ASCII characters without spaces');
    }
    if (!Number.isInteger(maxMessageMb) || maxMessageMb < 1 || maxMessageMb > 2047) {
      throw new RangeError(`maxMessageMb must be an integer 1..2047, got ${String(maxMessageMb)}`);
    }
    /** @type {string} */
    this.target = target;
    /** @type {number} seconds: every call's deadline unless the call gives its own */
    this.timeout = seconds(timeout, 'timeout');
    this.#token = token || null;

    const { Siamese, Health } = loadServices();
    const limit = maxMessageMb * 1024 * 1024;
    const opts = { 'grpc.max_receive_message_length': limit, 'grpc.max_send_message_length': limit, ...channelOptions };
    let creds;
    if (tlsCa != null) {
      creds = grpc.credentials.createSsl(pem(tlsCa, 'tlsCa'), pem(tlsKey, 'tlsKey'), pem(tlsCert, 'tlsCert'));
      if (serverName) {
        opts['grpc.ssl_target_name_override'] = serverName;
        opts['grpc.default_authority'] = serverName;
      }
    } else {
      creds = grpc.credentials.createInsecure();
    }
    this.#siam = new Siamese(target, creds, opts);
    this.#health = new Health(target, creds, { channelOverride: this.#siam.getChannel() });
  }

  /** Closes the connection; calls in flight are cancelled. */
  close() {
    this.#siam.close();
  }

  /** The @grpc/grpc-js Channel, for calls this class does not wrap (they need the token themselves). */
  get channel() {
    return this.#siam.getChannel();
  }

  #call(stub, method, request, timeout) {
    const deadline = new Date(Date.now() + 1000 * (timeout === undefined ? this.timeout : seconds(timeout, 'timeout')));
    const metadata = new grpc.Metadata();
    if (this.#token) metadata.set('authorization', `Bearer ${this.#token}`);
    return new Promise((resolve, reject) => {
      stub[method](request, metadata, { deadline }, (err, response) => {
        if (err) reject(errorFor(err.code, err.details, method, err));
        else resolve(response);
      });
    });
  }

  /**
   * The server's Status: version, loss settings, model, round, workers, checkpoints.
   * @param {{timeout?: number}} [options]
   * @returns {Promise<Status>}
   */
  async status({ timeout } = {}) {
    return this.#call(this.#siam, 'Status', {}, timeout);
  }

  /**
   * The gRPC health check of the server ("") or of one service ("siam.v1.Siamese").
   * @param {string} [service]
   * @param {{timeout?: number}} [options]
   * @returns {Promise<string>} "SERVING"; rejects with NotFound for a service the server does not have
   */
  async health(service = '', { timeout } = {}) {
    if (typeof service !== 'string') throw new TypeError('service must be a string');
    return (await this.#call(this.#health, 'Check', { service }, timeout)).status;
  }

  /**
   * Distances, scores and same/different verdicts of pairs, in the order given.
   *
   * `embeddings: [left, right]`: one embedding each side (numbers: one pair), or rows of them
   * (arrays or typed arrays such as Float32Array, one per pair). With `dim: N`, flat values are
   * sent as they are, N per embedding (a Float32Array of n x N values each side).
   *
   * `images: [left, right]`: 28x28 Fashion-MNIST images, grey levels 0..255, IMAGE_BYTES per
   * image: a Buffer or Uint8Array of n x 784 bytes, or arrays of integers (nested to any depth).
   * The server embeds them with its global model (FailedPrecondition until it has one).
   *
   * The server refuses bad sizes, NaN or Inf with InvalidArgument naming the field.
   * @param {{embeddings?: Array, images?: Array, dim?: number, timeout?: number}} request
   * @returns {Promise<SimilarityResult>}
   */
  async similarity({ embeddings, images, dim, timeout } = {}) {
    if ((embeddings === undefined) === (images === undefined)) {
      throw new TypeError('give embeddings: [left, right] or images: [left, right], not both');
    }
    if (dim !== undefined && (!Number.isInteger(dim) || dim < 0 || dim > 0xffffffff)) {
      throw new RangeError(`dim must be a non-negative integer, got ${String(dim)}`);
    }
    let request;
    if (embeddings !== undefined) {
      const [l, r] = pair(embeddings, 'embeddings');
      const [left, d] = embeddingSide(l, 'left', dim);
      const [right] = embeddingSide(r, 'right', d);
      request = { dim: d, left, right };
    } else {
      const [l, r] = pair(images, 'images');
      request = { leftImages: imageSide(l, 'left'), rightImages: imageSide(r, 'right') };
    }
    const res = await this.#call(this.#siam, 'Similarity', request, timeout);
    return { distances: res.distances, scores: res.scores, same: res.same, threshold: res.threshold };
  }

  /**
   * Identification: the k nearest items of the server's gallery to each query.
   *
   * `images`: query images of the model's input shape (`(await status()).inputShape`, "28x28x1"
   * for every builder: IMAGE_BYTES each), grey levels 0..255: a Buffer or Uint8Array of
   * n x H*W*C bytes, an array of images (Buffers, Uint8Arrays or arrays of integers), or
   * integers nested to any depth. The server embeds them with its global model.
   *
   * `embeddings`: query embeddings of the gallery's dimension, one (numbers) or rows (arrays or
   * typed arrays); with `dim: N`, flat values are sent as they are, N per query.
   *
   * `k`: matches per query, 1..64 (default 5; the server refuses more).
   *
   * Rejects with FailedPrecondition before the server has a model or while its gallery is
   * empty, InvalidArgument for images of the wrong size, a wrong dim, NaN or k out of range.
   * @param {{images?: *, embeddings?: Array, k?: number, dim?: number, timeout?: number}} request
   * @returns {Promise<SearchResults>}
   */
  async search({ images, embeddings, k = 5, dim, timeout } = {}) {
    if ((images === undefined) === (embeddings === undefined)) {
      throw new TypeError('give images or embeddings, not both');
    }
    if (!Number.isInteger(k)) throw new TypeError(`k must be an integer, got ${String(k)}`);
    if (k < 1 || k > 0xffffffff) throw new RangeError(`k must be 1 or more (matches per query), got ${k}`);
    if (dim !== undefined && (!Number.isInteger(dim) || dim < 0 || dim > 0xffffffff)) {
      throw new RangeError(`dim must be a non-negative integer, got ${String(dim)}`);
    }
    let request;
    if (embeddings !== undefined) {
      const [flat, d] = embeddingSide(embeddings, 'embeddings', dim);
      request = { dim: d, embeddings: flat, k };
    } else {
      request = { images: imageSide(images, 'images'), k };
    }
    const res = await this.#call(this.#siam, 'Search', request, timeout);
    return {
      results: res.results.map((r) => ({
        matches: r.matches.map((m) => ({ id: m.id, label: m.label, distance: m.distance, score: m.score })),
        predictedLabel: r.predictedLabel,
        confidence: r.confidence,
      })),
      modelRound: res.modelRound,
      gallerySize: res.gallerySize,
    };
  }

  /**
   * Adds labelled images to the server's gallery (few-shot: a handful of images of a class the
   * model never saw); they are searchable when the promise resolves.
   *
   * `images`: as search()'s. `labels`: one string per image (a class number such as "7" or a
   * name; valid UTF-8, 1..64 bytes, no control characters), or one string for every image (for
   * images given as one buffer, the count comes from the server's input shape: one Status call).
   *
   * Rejects with ResourceExhausted when the gallery would pass its size limit (siam-server
   * --gallery-max); with tokens on, the call needs the training token.
   * @param {{images: *, labels: string|string[], timeout?: number}} request
   * @returns {Promise<GalleryAddResult>}
   */
  async addToGallery({ images, labels, timeout } = {}) {
    if (images === undefined) throw new TypeError('images are required');
    const data = imageSide(images, 'images');
    if (typeof labels === 'string') {
      let n;
      if (Array.isArray(images) && images.length > 0 && typeof images[0] !== 'number') {
        n = images.length;
      } else { // one flat buffer: as many images as the model's input shape gives
        const size = (await this.status({ timeout })).inputShape.split('x').reduce((a, b) => a * Number(b), 1);
        if (!(size > 0) || data.length % size !== 0) {
          throw new TypeError('one label for all: give images as an array of images, or labels as an array, one per image ' +
            "(the server's input shape does not divide the bytes given)");
        }
        n = data.length / size;
      }
      labels = new Array(n).fill(labels);
    } else if (!Array.isArray(labels)) {
      throw new TypeError('labels must be a string or an array of strings, one per image');
    }
    labels.forEach((l, i) => {
      if (typeof l !== 'string') throw new TypeError(`labels[${i}] is ${l === null ? 'null' : typeof l}, not a string`);
    });
    const res = await this.#call(this.#siam, 'AddToGallery', { images: data, labels }, timeout);
    return { ids: res.ids, gallerySize: res.gallerySize, modelRound: res.modelRound };
  }
}

module.exports = {
  Client,
  IMAGE_BYTES,
  SiamError,
  ...ERRORS,
  errorFor,
  /** The directory the .proto files are read from (SIAM_PROTO_DIR, the package's, the repository's). */
  protoDir,
  /** @grpc/grpc-js as this package loaded it (grpc.status, grpc.Metadata, ...). */
  grpc,
};
