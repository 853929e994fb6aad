/* test_checkpoint_kill: a checkpoint is never half-written, proven with real kills. A child
 * process saves a 6 MB checkpoint in a loop, cycling through four versions, and is killed with
 * SIGKILL after a random delay, 48 times. After every kill the file at the path must load (CRC
 * and sizes checked by siam_checkpoint_load) and hold exactly one of the versions, bit for bit;
 * the temp file a killed writer leaves never confuses the load and is removed by the next save.
 * Most kills must land while a write is in progress (a temp file is there), or the test would
 * prove nothing. */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "siam_checkpoint.h"
#include "siam_log.h"
#include "siam_rng.h"

#define N_PARAMS   (1536u * 1024u) /* 6 MiB of floats */
#define N_VERSIONS 4
#define KILLS      48

static char dir[64], path[128];
static float *versions[N_VERSIONS];
static uint32_t crcs[N_VERSIONS];

static int count_temp_files(void) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static int save_version(int v, siam_error *err) {
    return siam_checkpoint_save(path, "in=28x28x1 dense8", (uint64_t)v, (uint64_t)v, versions[v],
                                N_PARAMS, NULL, 0, err);
}

/* The writer: saves the versions in turn until it is killed. */
static void writer(int first) {
    siam_error err = {0};
    for (int v = first;; v = (v + 1) % N_VERSIONS)
        if (save_version(v, &err) != SIAM_OK) {
            fprintf(stderr, "writer: %s\n", err.msg);
            _exit(3);
        }
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/siam-test-kill-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/global.ckpt", dir);
    siam_rng rng;
    siam_rng_seed(&rng, 2024);
    for (int v = 0; v < N_VERSIONS; v++) {
        versions[v] = malloc(N_PARAMS * sizeof(float));
        if (!versions[v])
            return 1;
        for (size_t i = 0; i < N_PARAMS; i++)
            versions[v][i] = (2 * siam_rng_uniform(&rng) - 1) * (float)(v + 1);
        crcs[v] = siam_params_crc32(versions[v], N_PARAMS);
    }

    /* the first version in place, and how long one save takes here */
    siam_error err = {0};
    double t0 = siam_now();
    CHECK(save_version(0, &err) == SIAM_OK, "%s", err.msg);
    double t_save = siam_now() - t0;

    int mid_write = 0, seen[N_VERSIONS] = {0}, bad_loads = 0, wrong = 0;
    for (int k = 0; k < KILLS; k++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(0, "fork: %s", strerror(errno));
            break;
        }
        if (pid == 0)
            writer((k + 1) % N_VERSIONS);
        /* random moments over a few saves: start-up, mid-write, fsync, rename, between saves */
        sleep_s(siam_rng_uniform(&rng) * 3.0 * t_save + 0.002);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "kill %d: the writer ended by itself (status %d)", k, status);
        mid_write += count_temp_files() > 0;

        siam_checkpoint ck;
        if (siam_checkpoint_load(&ck, path, &err) != SIAM_OK) {
            bad_loads++;
            CHECK(0, "kill %d: the checkpoint does not load: %s", k, err.msg);
            continue;
        }
        int v = (int)ck.step;
        if (v < 0 || v >= N_VERSIONS || ck.round != ck.step || ck.n_params != N_PARAMS ||
            siam_params_crc32(ck.params, ck.n_params) != crcs[v] ||
            memcmp(ck.params, versions[v], N_PARAMS * sizeof(float)) != 0) {
            wrong++;
            CHECK(0, "kill %d: the checkpoint loads but is none of the versions (step %llu)", k,
                  (unsigned long long)ck.step);
        } else {
            seen[v]++;
        }
        siam_checkpoint_free(&ck);
    }
    int distinct = 0;
    for (int v = 0; v < N_VERSIONS; v++)
        distinct += seen[v] > 0;
    printf("one save of %zu MB: %.1f ms; %d kills, %d of them during a write; versions found "
           "%d/%d/%d/%d\n",
           (size_t)N_PARAMS * 4 >> 20, t_save * 1e3, KILLS, mid_write, seen[0], seen[1], seen[2],
           seen[3]);
    CHECK(bad_loads == 0 && wrong == 0, "%d loads failed, %d held something else", bad_loads,
          wrong);
    CHECK(mid_write >= KILLS / 4, "only %d of %d kills landed during a write", mid_write, KILLS);
    CHECK(distinct >= 2, "the file never changed between kills (%d version seen)", distinct);

    /* the killed writers' temp files: at most the last one's is left, and the next save
     * removes it (its process is gone) */
    CHECK(count_temp_files() <= 1, "%d temp files left by %d killed writers", count_temp_files(),
          KILLS);
    CHECK(save_version(2, &err) == SIAM_OK, "%s", err.msg);
    CHECK(count_temp_files() == 0, "a dead writer's temp file survived the next save");

    /* a temp file of a live process (this one's parent: it exists) is left alone */
    char live[192];
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    FILE *f = fopen(live, "wb");
    CHECK(f != NULL, "create %s", live);
    if (f)
        fclose(f);
    CHECK(save_version(1, &err) == SIAM_OK, "%s", err.msg);
    CHECK(access(live, F_OK) == 0, "a live process's temp file was removed");
    unlink(live);

    unlink(path);
    CHECK(rmdir(dir) == 0, "rmdir %s: %s", dir, strerror(errno));
    for (int v = 0; v < N_VERSIONS; v++)
        free(versions[v]);
    return tu_finish();
}
