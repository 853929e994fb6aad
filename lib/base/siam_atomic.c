/* siam_atomic: temp file + fsync + rename + directory fsync. */
#include "siam_atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Removes "<path>.tmp.<pid>" files whose process no longer exists: a writer killed mid-write
 * leaves its temp file behind (the file at path is untouched), and a server restarted in a
 * loop would pile them up. A live process's temp file, even another program's, is kept. */
static void remove_stale_temps(const char *path) {
    char dir_buf[4096], base_buf[4096];
    snprintf(dir_buf, sizeof dir_buf, "%s", path);
    snprintf(base_buf, sizeof base_buf, "%s", path);
    const char *dir = dirname(dir_buf), *base = basename(base_buf);
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0)
            continue;
        const char *digits = n + blen + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (!*digits || *end || errno || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

int siam_atomic_open(siam_atomic_file *a, const char *path, siam_error *err) {
    memset(a, 0, sizeof *a);
    if (strlen(path) >= sizeof a->path)
        return siam_error_set(err, SIAM_ERR_ARG, "path too long: %.64s...", path);
    strcpy(a->path, path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    /* A stale temp file of a crashed earlier run with our pid may exist; replace it, but never
     * write through something that appears under that name meanwhile ("x": O_EXCL). */
    unlink(a->tmp);
    remove_stale_temps(path);
    a->f = fopen(a->tmp, "wbx");
    if (!a->f) {
        int e = errno;
        siam_error_set(err, SIAM_ERR_IO, "%s: cannot create temporary file %s: %s", path, a->tmp,
                       strerror(e));
        errno = e; /* for siam_atomic_check_writable's message */
        return SIAM_ERR_IO;
    }
    return SIAM_OK;
}

int siam_atomic_check_writable(const char *path, siam_error *err) {
    siam_atomic_file a;
    if (!path || !*path)
        return siam_error_set(err, SIAM_ERR_ARG, "empty output path");
    int rc = siam_atomic_open(&a, path, err);
    if (rc == SIAM_ERR_IO) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        return siam_error_set(err, SIAM_ERR_IO,
                              "%s cannot be written: %s (create the directory %s or choose "
                              "another path)",
                              path, strerror(errno), dirname(dir));
    }
    if (rc)
        return rc;
    siam_atomic_abort(&a);
    return SIAM_OK;
}

/* fsync of the directory holding path, so the rename itself survives a crash; 0 or errno */
static int fsync_dir(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return errno;
    int rc = 0;
    /* EINVAL: this filesystem cannot sync directories; nothing more can be done */
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = errno;
    close(fd);
    return rc;
}

int siam_atomic_commit(siam_atomic_file *a, siam_error *err) {
    if (!a->f)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: no file open", a->path);
    const char *failed = NULL;
    int e = 0;
    if (fflush(a->f) != 0 || ferror(a->f))
        failed = "write", e = errno ? errno : EIO;
    else if (fsync(fileno(a->f)) != 0)
        failed = "fsync", e = errno;
    if (fclose(a->f) != 0 && !failed) /* the stream is closed either way */
        failed = "close", e = errno;
    a->f = NULL;
    if (!failed && rename(a->tmp, a->path) != 0)
        failed = "rename", e = errno;
    if (failed) {
        unlink(a->tmp);
        return siam_error_set(err, SIAM_ERR_IO, "%s: %s of temporary file failed: %s", a->path,
                              failed, strerror(e));
    }
    /* the new file is in place; a failure here only means the rename may not be durable */
    if ((e = fsync_dir(a->path)) != 0)
        return siam_error_set(err, SIAM_ERR_IO, "%s: saved, but fsync of its directory failed: %s",
                              a->path, strerror(e));
    return SIAM_OK;
}

void siam_atomic_abort(siam_atomic_file *a) {
    if (a->f) {
        fclose(a->f);
        a->f = NULL;
        unlink(a->tmp);
    }
}

int siam_atomic_write(const char *path, const void *data, size_t len, siam_error *err) {
    siam_atomic_file a;
    int rc = siam_atomic_open(&a, path, err);
    if (rc)
        return rc;
    if (len && fwrite(data, 1, len, a.f) != len) {
        int saved = errno;
        siam_atomic_abort(&a);
        return siam_error_set(err, SIAM_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    }
    return siam_atomic_commit(&a, err);
}
