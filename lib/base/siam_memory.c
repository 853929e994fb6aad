/* siam_memory: glibc malloc settings that keep a server's RSS flat under load. */
#include "siam_memory.h"

#include <malloc.h>
#include <unistd.h>

void siam_malloc_keep_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 256 << 20); /* blocks below 256 MiB come from the heap */
    mallopt(M_TRIM_THRESHOLD, 512 << 20); /* and the heap is not trimmed back below 512 MiB */
    /* one arena per core instead of glibc's eight: every arena keeps its own high-water mark,
     * and gRPC's dozen threads would each grow one */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, cores < 1 ? 1 : cores > 64 ? 64 : (int)cores);
}
