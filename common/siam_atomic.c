/* siam_atomic: temp file + fsync + rename + directory fsync. */
#include "siam_atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <unistd.h>

int siam_atomic_open(siam_atomic_file *a, const char *path, siam_error *err) {
    memset(a, 0, sizeof *a);
    if (strlen(path) >= sizeof a->path)
        return siam_error_set(err, SIAM_ERR_ARG, "path too long: %.64s...", path);
    strcpy(a->path, path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f)
        return siam_error_set(err, SIAM_ERR_IO, "%s: cannot create %s: %s", path, a->tmp,
                              strerror(errno));
    return SIAM_OK;
}

static int fsync_dir(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int siam_atomic_commit(siam_atomic_file *a, siam_error *err) {
    if (!a->f)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: no file open", a->path);
    int ok = fflush(a->f) == 0 && !ferror(a->f) && fsync(fileno(a->f)) == 0;
    int saved = errno;
    ok = (fclose(a->f) == 0) && ok;
    a->f = NULL;
    if (!ok) {
        unlink(a->tmp);
        return siam_error_set(err, SIAM_ERR_IO, "%s: write failed: %s", a->path,
                              strerror(saved ? saved : errno));
    }
    if (rename(a->tmp, a->path) != 0) {
        saved = errno;
        unlink(a->tmp);
        return siam_error_set(err, SIAM_ERR_IO, "%s: cannot rename %s into place: %s", a->path,
                              a->tmp, strerror(saved));
    }
    if (fsync_dir(a->path) != 0)
        return siam_error_set(err, SIAM_ERR_IO,
                              "%s: written, but fsync of its directory failed: %s", a->path,
                              strerror(errno));
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
