/* bench_main.c: siam-bench's command line; each suite reports its own figures.
 *   local       OpenBLAS sgemm at the shapes the models use and the local training rate (both
 *               forward passes + backward + Adam, no network) of each model (the default);
 *               --only embed: inference embeddings (siam_model_embed) in images/s instead;
 *   head        the server's loss head alone on one thread: the contrastive loss and its
 *               gradients, and the whole Train request path (decode, validate, compute, encode);
 *   set-head    the set loss head (TrainSet) on one thread: siam_set_loss alone for every loss
 *               and distance at n = 256, dim 64 and 128, and its growth with n; the whole
 *               TrainSet request path; TrainSet over loopback to an in-process server;
 *   similarity  a load generator for siam-server's Similarity: N callers, each with its own
 *               channel, sending one pre-encoded request back to back (embeddings, or with
 *               --images raw image pairs the server embeds with its model);
 *   search      siam-server's Search against its gallery: p50/p99 and queries/s of one query from
 *               1 and --callers callers, embedding and image Similarity of one pair from 1 and
 *               --callers callers, and the time to re-embed the gallery after an averaging round;
 *   load        siam-server under sustained mixed load: concurrent Train streams (one thread
 *               each) and Similarity callers for a timed window after a warm-up; calls, failures
 *               and latency percentiles per RPC, and the server's RSS sampled every second;
 *   compress    gRPC's message compression (gzip) on real messages serialized as siam sends
 *               them: a WeightsUpdate of a model's parameters (--checkpoint's, or fresh ones of
 *               --model), an EmbeddingBatch of real Fashion-MNIST pairs and its BatchResult, in
 *               every wire encoding: ratio, compress and decompress MB/s at zlib levels 1 and 6,
 *               and the link rate below which compression pays. */
#include <stdio.h>
#include <string.h>

#include "bench_stats.h"
#include "bench_suites.h"
#include "siam_dataset.h"
#include "siam_options.h"
#include "siam_service.h"
#include "siam_set_loss.h"

int main(int argc, char **argv) {
    bench_config c = {.suite = "local",
                      .data = SIAM_DATA_DIR_DEFAULT,
                      .server = "127.0.0.1:50051",
                      .reps = 5,
                      .scale = 1,
                      .batch = 0,
                      .dim = 128,
                      .callers = 4,
                      .pairs = 1,
                      .seconds = 0.0f,
                      .only = "all",
                      .streams = 32,
                      .warmup = 5.0f,
                      .channels = "connections",
                      .model = "mlp"};
    const siam_option opts[] = {
        {"suite", SIAM_OPT_CHOICE, &c.suite, 0, 0,
         "local|head|set-head|similarity|search|load|compress", NULL,
         "local: sgemm + local training; head: the server's loss head on one thread; "
         "set-head: the set loss head (TrainSet) on one thread, every loss at n = 256; "
         "similarity: Similarity load on a siam-server; search: Search, Similarity and the "
         "gallery's re-embedding on a siam-server with a gallery; load: Train streams + "
         "Similarity callers at once on a siam-server, with its RSS; compress: gzip (gRPC's "
         "message compression) on real WeightsUpdate, EmbeddingBatch and BatchResult messages"},
        {"data", SIAM_OPT_STRING, &c.data, 0, 0, NULL, "DIR",
         "local, compress: Fashion-MNIST directory"},
        {"threads", SIAM_OPT_INT, &c.threads, 0, 256, NULL, "N",
         "local: OpenBLAS threads (0 = library default)"},
        {"reps", SIAM_OPT_INT, &c.reps, 1, BENCH_MAX_REPS, NULL, "N",
         "timed repeats per figure (median)"},
        {"scale", SIAM_OPT_INT, &c.scale, 1, 100, NULL, "K",
         "local: multiply the steps per training timing by K"},
        {"only", SIAM_OPT_CHOICE, &c.only, 0, 0, "all|sgemm|train|embed", NULL,
         "local: which figures to take (all = sgemm and train; embed: siam_model_embed "
         "images/s, mlp on 70,000 and cnn on 7,000 random images, times --scale)"},
        {"batch", SIAM_OPT_INT, &c.batch, 0, 65536, NULL, "B",
         "head: pairs per batch (0 = 857); load: pairs per Train batch (0 = 128); set-head: "
         "the growth rows' largest n (1024, 4096, ... up to B; 0 = 4096, at most "
         "SIAM_SET_LOSS_MAX_N = 4096; below 1024: none); compress: pairs per EmbeddingBatch "
         "(0 = 128 and 857)"},
        {"dim", SIAM_OPT_INT, &c.dim, 1, SIAM_SERVICE_MAX_DIM, NULL, "D",
         "head, similarity, load: embedding dimension"},
        {"server", SIAM_OPT_STRING, &c.server, 0, 0, NULL, "ADDR",
         "similarity, search, load: siam-server"},
        {"callers", SIAM_OPT_INT, &c.callers, 0, 1024, NULL, "N",
         "similarity, search (>= 1; search: the N of its N-caller runs), load: concurrent "
         "Similarity callers, one thread each"},
        {"pairs", SIAM_OPT_INT, &c.pairs, 1, 65536, NULL, "P",
         "similarity: pairs per request (load cycles through 1, 10, 100 and 1000)"},
        {"images", SIAM_OPT_FLAG, &c.images, 0, 0, NULL, NULL,
         "similarity: send pairs of random 28x28 images (left_images, right_images) for the "
         "server to embed with its model (siam-server --model or --resume), not embeddings"},
        {"seconds", SIAM_OPT_FLOAT, &c.seconds, 0, 3600, NULL, "S",
         "similarity, search, load: length of the timed window (0 = 10 for similarity, 5 for "
         "each of search's six windows, 60 for load)"},
        {"streams", SIAM_OPT_INT, &c.streams, 0, 1024, NULL, "N",
         "load: concurrent Train streams, one thread each"},
        {"warmup", SIAM_OPT_FLOAT, &c.warmup, 0, 600, NULL, "S",
         "load: seconds of load before the timed window, not counted"},
        {"channels", SIAM_OPT_CHOICE, &c.channels, 0, 0, "connections|per-thread|shared", NULL,
         "load: a channel and a connection per thread (as separate workers), a channel per "
         "thread (gRPC puts them on one connection), or one channel for all threads"},
        {"server-pid", SIAM_OPT_INT, &c.server_pid, 0, 2147483647, NULL, "PID",
         "load: sample this process's RSS (/proc/PID/status) every second; 0 = do not"},
        {"model", SIAM_OPT_STRING, &c.model, 0, 0, NULL, "NAME|SPEC",
         "compress: the model (mlp, mlp2, cnn, cnn2 or a spec), freshly initialised (seed 1), "
         "when there is no --checkpoint"},
        {"checkpoint", SIAM_OPT_STRING, &c.checkpoint, 0, 0, NULL, "FILE",
         "compress: a siam checkpoint: its model with its trained parameters"},
        {"json", SIAM_OPT_FLAG, &c.json, 0, 0, NULL, NULL,
         "head, set-head, similarity, search, load, compress: also print the figures as one "
         "JSON line"},
    };
    int rc = siam_options_main(
        BENCH_PROG, SIAM_VERSION,
        "Benchmarks, as medians. --suite local: sgemm GFLOP/s at the models' shapes and local "
        "training\npairs/s (--only embed: inference embeddings, images/s); head: the loss head "
        "alone (pairs/s);\n"
        "set-head: the set loss head alone (siam_set_loss) for every loss and distance at n = "
        "256 (P x K = 32 x 8)\nand dim 64 and 128, semi-hard at n = 1024 and 4096, the whole "
        "TrainSet request path and TrainSet\nover loopback to an in-process server (n = 256, "
        "dim 64): calls/s, us per call p50/p90, images/s,\nterms/s (contrastive pairs, "
        "batch-all and semi-hard triplets, batch-hard anchors);\nsimilarity: Similarity requests/s "
        "and latency percentiles from "
        "concurrent callers (exit 1 if\nany call fails; --images: image pairs, embedded by the "
        "server's model).\n"
        "search: on a siam-server with a model and a gallery: Search of one random image (k = 5), "
        "p50/p99 and\nqueries/s from 1 and --callers callers; embedding (dim 128) and image "
        "Similarity of one pair from\n1 and --callers callers; the gallery's re-embedding after "
        "an averaging round this suite closes\n(SyncWeights, the weights unchanged), timed until "
        "Status reports it, with the Search latency\nmeanwhile (exit 1 if any call fails).\n"
        "load: --streams Train streams (batch x dim random finite floats) and --callers "
        "Similarity callers\n(1/10/100/1000 pairs per request, in turn) against --server for "
        "--warmup + --seconds;\nreports calls, failures (each printed), latency p50/p90/p99/max "
        "per RPC, throughput, and\nwith --server-pid the server's RSS every second: first/median/"
        "last/max after the warm-up\nand 'flat' when last <= first + max(10%, 16 MB) and the "
        "second half's median is not\nabove the first half's by more; exit 1 if a call failed, "
        "a stream or caller made no progress, or\nStatus does not answer afterwards.\n"
        "compress: WeightsUpdate (--checkpoint's parameters, else fresh --model ones; fp32 and "
        "packed in\nblocks of 256 as fp16, bf16, int8), EmbeddingBatch of --batch real training "
        "pairs embedded by\nthe model and its BatchResult (contrastive loss, grad_right "
        "omitted), each in fp32, fp16, bf16,\nint8; gzipped as gRPC's C core does (windowBits "
        "15+16, memLevel 8) at zlib levels 1 and 6\n(gRPC uses 6): bytes, gz/raw, compress and "
        "decompress MB/s, and the break-even link rate\nraw * (1 - ratio) * 8 / (t_compress + "
        "t_decompress) below which gzip pays, as a table.\n"
        "Output: one 'kind name value unit' line per figure (compress: one table row per "
        "payload and level).",
        opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc >= 0)
        return rc;
    if (strcmp(c.suite, "head") == 0) {
        if (!c.batch)
            c.batch = 857;
        return bench_suite_head(&c);
    }
    if (strcmp(c.suite, "set-head") == 0) {
        if (!c.batch)
            c.batch = SIAM_SET_LOSS_MAX_N;
        if (c.batch > SIAM_SET_LOSS_MAX_N) {
            fprintf(stderr,
                    BENCH_PROG ": --suite set-head --batch %d: sets of more than "
                               "SIAM_SET_LOSS_MAX_N = %d embeddings are refused (siam-server "
                               "answers RESOURCE_EXHAUSTED; the loss holds two n x n float "
                               "matrices, %d MiB at the limit)\n",
                    c.batch, SIAM_SET_LOSS_MAX_N,
                    (int)(2.0 * SIAM_SET_LOSS_MAX_N * SIAM_SET_LOSS_MAX_N * 4 / 1048576));
            return 2;
        }
        return bench_suite_set_head(&c);
    }
    if (strcmp(c.suite, "similarity") == 0) {
        if (c.callers < 1) {
            fprintf(stderr, BENCH_PROG ": --suite similarity needs --callers 1 or more\n");
            return 2;
        }
        if (c.seconds <= 0)
            c.seconds = 10.0f;
        return bench_suite_similarity(&c);
    }
    if (strcmp(c.suite, "search") == 0) {
        if (c.callers < 1) {
            fprintf(stderr, BENCH_PROG ": --suite search needs --callers 1 or more\n");
            return 2;
        }
        if (c.seconds <= 0)
            c.seconds = 5.0f;
        return bench_suite_search(&c);
    }
    if (strcmp(c.suite, "load") == 0) {
        if (c.seconds <= 0)
            c.seconds = 60.0f;
        if (c.streams + c.callers < 1) {
            fprintf(stderr, BENCH_PROG ": --suite load needs --streams or --callers above 0\n");
            return 2;
        }
        return bench_suite_load(&c);
    }
    if (strcmp(c.suite, "compress") == 0)
        return bench_suite_compress(&c);
    return bench_suite_local(&c);
}
