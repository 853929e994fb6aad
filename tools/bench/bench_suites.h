/* bench_suites.h: siam-bench's settings and the entry point of each suite. */
#ifndef BENCH_SUITES_H
#define BENCH_SUITES_H

#define BENCH_PROG "siam-bench"

/* The command line, after bench_main has filled in each suite's defaults. */
typedef struct {
    const char *suite, *data, *server;
    int threads, reps, scale, json;
    int batch, dim, callers, pairs;
    int images; /* similarity: send image pairs, not embeddings */
    float seconds;
    const char *only;
    int streams, server_pid; /* load */
    float warmup;
    const char *channels;
    const char *model, *checkpoint; /* compress */
} bench_config;

/* Each returns the process's exit code: 0, 1 (a failure), 2 (a bad command line). */

/* sgemm GFLOP/s at the models' shapes and local training pairs/s (bench_local.c) */
int bench_suite_local(const bench_config *c);
/* --only embed: inference embeddings (siam_model_embed) in images/s (bench_embed.c) */
int bench_embed_runs(const bench_config *c);
/* the server's loss head alone, in process (bench_head.c) */
int bench_suite_head(const bench_config *c);
/* the set loss head (TrainSet) alone, its request path and over loopback (bench_set_head.c) */
int bench_suite_set_head(const bench_config *c);
/* Similarity load from concurrent callers on a siam-server (bench_similarity.c) */
int bench_suite_similarity(const bench_config *c);
/* Search, embedding and image Similarity from 1 and N callers, and the gallery's re-embedding,
 * on a siam-server with a gallery (bench_search.c) */
int bench_suite_search(const bench_config *c);
/* Train streams and Similarity callers at once on a siam-server, and its RSS (bench_load.c) */
int bench_suite_load(const bench_config *c);
/* gzip (gRPC's message compression) on real WeightsUpdate, EmbeddingBatch and BatchResult
 * messages: ratios, MB/s and the link rate below which it pays (bench_compress.c) */
int bench_suite_compress(const bench_config *c);

#endif
