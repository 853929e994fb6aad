/* siam_memory: malloc tuning for long-running programs that churn message-sized buffers. */
#ifndef SIAM_MEMORY_H
#define SIAM_MEMORY_H

/* For programs that allocate and free message-sized buffers (hundreds of KB) on every batch:
 * keeps freed memory in the heap instead of handing it back to the kernel. With glibc's
 * defaults each such buffer is a fresh mmap, and its page faults dominate the server's Train
 * path (docs/BENCHMARKS.md). Also caps malloc's arenas at one per core, so the memory kept does
 * not grow with the number of threads. Call once, early in main (before threads start). */
void siam_malloc_keep_memory(void);

#endif
