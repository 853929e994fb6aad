/* siam_search_picture: search.png through gnuplot. The images go to a data file (one matrix
 * block per tile, as plot.sh's predictions_images.dat), the frames and captions to the script; the
 * PNG is drawn to a temporary name beside the target and renamed into place. */
#include "siam_search_picture.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Data units per tile: the image plus room for the captions below it and a gap beside it. */
#define GAP_X_FRAC   0.55
#define GAP_Y_FRAC   0.75
#define PX_PER_UNIT  3 /* screen pixels per image pixel */
#define QUERY_GAP_PX 10

int siam_picture_have_gnuplot(void) {
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/bin:/bin";
    char *copy = strdup(path), *save = NULL;
    int found = 0;
    for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char full[4096];
        if ((size_t)snprintf(full, sizeof full, "%s/gnuplot", *dir ? dir : ".") < sizeof full)
            found = access(full, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* s as a gnuplot double-quoted string (labels are noenhanced, so no markup): quotes and
 * backslashes escaped, newlines as gnuplot's \n, other control characters as spaces */
static void gp_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\n') {
            fputs("\\n", f); /* gnuplot's newline in a double-quoted string */
            continue;
        }
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
    }
    fputc('"', f);
}

static const char *verdict_colour(siam_tile_verdict v) {
    return v == SIAM_TILE_RIGHT ? "#1a9641" : v == SIAM_TILE_WRONG ? "#d7191c" : "#777777";
}

/* The tile's frame and captions at (x0, y0), its top left pixel; *obj and *lab count gnuplot's
 * object and label numbers. */
static void tile_decor(FILE *f, const siam_picture_tile *t, double x0, double y0, int h, int w,
                       int is_query, int *obj, int *lab) {
    const char *colour = is_query ? "#2b5fa8" : verdict_colour(t->verdict);
    fprintf(f, "set object %d rect from %g,%g to %g,%g fs %s border lc rgb \"%s\" lw %d front\n",
            ++*obj, x0 - 1.5, y0 - h + 0.5 - 1.0, x0 + w - 0.5 + 1.0, y0 + 1.5,
            t->pixels ? "empty" : "solid 0.15", colour, is_query ? 4 : 3);
    if (!t->pixels) {
        fprintf(f, "set label %d ", ++*lab);
        gp_string(f, "image not");
        fprintf(f, " at %g,%g center tc rgb \"#555555\" font \",8\" noenhanced front\n",
                x0 + (w - 1) / 2.0, y0 - h / 2.0 + 2);
        fprintf(f, "set label %d ", ++*lab);
        gp_string(f, "known here");
        fprintf(f, " at %g,%g center tc rgb \"#555555\" font \",8\" noenhanced front\n",
                x0 + (w - 1) / 2.0, y0 - h / 2.0 - 3);
    }
    double cy = y0 - h - h * 0.16;
    fprintf(f, "set label %d ", ++*lab);
    gp_string(f, t->line1);
    fprintf(f, " at %g,%g center tc rgb \"%s\" font \",9\" noenhanced front\n", x0 + (w - 1) / 2.0,
            cy, colour);
    fprintf(f, "set label %d ", ++*lab);
    gp_string(f, t->line2);
    fprintf(f, " at %g,%g center tc rgb \"#444444\" font \",8\" noenhanced front\n",
            x0 + (w - 1) / 2.0, cy - h * 0.22);
}

static void tile_pixels(FILE *f, const uint8_t *px, int h, int w, int *blocks) {
    if (*blocks)
        fputs("\n\n", f);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            fprintf(f, x ? " %d" : "%d", px[(size_t)y * w + x]);
        fputc('\n', f);
    }
    ++*blocks;
}

/* Runs gnuplot on script, its output into log. */
static int run_gnuplot(const char *script, const char *log, siam_error *err) {
    posix_spawn_file_actions_t fa;
    pid_t pid;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return siam_error_set(err, SIAM_ERR_IO,
                              "--picture needs gnuplot, which cannot be run (%s): apt-get install "
                              "gnuplot-nox (or scripts/install-deps.sh)",
                              strerror(rc));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return SIAM_OK;
    char out[300] = "";
    FILE *lf = fopen(log, "r");
    if (lf) {
        size_t n = fread(out, 1, sizeof out - 1, lf);
        out[n] = '\0';
        fclose(lf);
        for (char *p = out; *p; p++)
            if (*p == '\n')
                *p = ' ';
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return siam_error_set(err, SIAM_ERR_IO,
                              "--picture needs gnuplot, which is not installed: apt-get install "
                              "gnuplot-nox (or scripts/install-deps.sh)");
    return siam_error_set(err, SIAM_ERR_IO, "gnuplot failed to draw the picture: %s",
                          out[0] ? out : "(no output)");
}

int siam_picture_draw(const char *path, const char *title, const siam_picture_row *rows, int n_rows,
                      int h, int w, siam_error *err) {
    if (n_rows < 1 || n_rows > SIAM_PICTURE_MAX_QUERIES || h < 1 || w < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "picture: %d rows of %dx%d tiles", n_rows, h, w);
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir || strlen(tmpdir) > 4000)
        tmpdir = "/tmp";
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s/siam-picture-XXXXXX", tmpdir);
    if (!mkdtemp(dirbuf))
        return siam_error_set(err, SIAM_ERR_IO, "cannot create a temporary directory %s (%s)",
                              dirbuf, strerror(errno));
    char data[4200], script[4200], log[4200], part[4200];
    snprintf(data, sizeof data, "%s/tiles.dat", dirbuf);
    snprintf(script, sizeof script, "%s/search.gp", dirbuf);
    snprintf(log, sizeof log, "%s/gnuplot.log", dirbuf);
    int rc = SIAM_OK;
    if ((size_t)snprintf(part, sizeof part, "%s.tmp.%ld", path, (long)getpid()) >= sizeof part) {
        rc = siam_error_set(err, SIAM_ERR_ARG, "--picture %s: path too long", path);
        goto done;
    }
    int cols = 1;
    for (int r = 0; r < n_rows; r++)
        if (rows[r].n_matches + 1 > cols)
            cols = rows[r].n_matches + 1;
    double cw = w * (1 + GAP_X_FRAC), ch = h * (1 + GAP_Y_FRAC);
    double query_gap = (double)QUERY_GAP_PX / PX_PER_UNIT;
    FILE *df = fopen(data, "w"), *sf = fopen(script, "w");
    if (!df || !sf) {
        if (df)
            fclose(df);
        if (sf)
            fclose(sf);
        rc = siam_error_set(err, SIAM_ERR_IO, "cannot write in %s (%s)", dirbuf, strerror(errno));
        goto done;
    }
    int blocks = 0, obj = 0, lab = 0;
    /* tile positions of the blocks, for the plot's arrays */
    double *tx = malloc(sizeof *tx * (size_t)n_rows * (SIAM_PICTURE_MAX_MATCHES + 1));
    double *ty = malloc(sizeof *ty * (size_t)n_rows * (SIAM_PICTURE_MAX_MATCHES + 1));
    if (!tx || !ty) {
        fclose(df);
        fclose(sf);
        free(tx);
        free(ty);
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        goto done;
    }
    int width = (int)((cols * cw + query_gap + 8) * PX_PER_UNIT) + 40;
    int height = (int)((n_rows * ch + h * 0.6 + 4) * PX_PER_UNIT) + 90;
    if (width < 560)
        width = 560;
    fprintf(sf,
            "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size %d,%d "
            "font 'sans,10' } else { set terminal png size %d,%d }\n",
            width, height, width, height);
    fprintf(sf, "set output ");
    gp_string(sf, part);
    fprintf(sf, "\nset title ");
    gp_string(sf, title);
    fprintf(sf, " noenhanced\n");
    for (int r = 0; r < n_rows; r++) {
        double y0 = -r * ch;
        const siam_picture_row *row = &rows[r];
        for (int j = 0; j <= row->n_matches; j++) {
            const siam_picture_tile *t = j == 0 ? &row->query : &row->matches[j - 1];
            double x0 = j * cw + (j > 0 ? query_gap : 0);
            tile_decor(sf, t, x0, y0, h, w, j == 0, &obj, &lab);
            if (t->pixels) {
                tx[blocks] = x0;
                ty[blocks] = y0;
                tile_pixels(df, t->pixels, h, w, &blocks);
            }
        }
    }
    fprintf(sf, "array TX[%d]\narray TY[%d]\n", blocks, blocks);
    for (int b = 0; b < blocks; b++)
        fprintf(sf, "TX[%d] = %g; TY[%d] = %g\n", b + 1, tx[b], b + 1, ty[b]);
    free(tx);
    free(ty);
    fprintf(sf,
            "set palette gray negative\nset cbrange [0:255]\nunset colorbox\nunset border\n"
            "unset tics\nunset key\nset size ratio -1\nset xrange [%g:%g]\nset yrange [%g:%g]\n"
            "set lmargin 1\nset rmargin 1\nset bmargin 1\n",
            -3.0, cols * cw + query_gap, -(n_rows - 1) * ch - h - h * 0.6, 3.0);
    fprintf(sf, "plot for [t=1:%d] ", blocks);
    gp_string(sf, data);
    fprintf(sf, " matrix index (t-1) using (TX[t] + $1):(TY[t] - $2):3 with image\n"
                "set output\n");
    int bad = ferror(df) | ferror(sf);
    bad |= fclose(df) != 0;
    bad |= fclose(sf) != 0;
    if (bad) {
        rc = siam_error_set(err, SIAM_ERR_IO, "cannot write the picture's data in %s", dirbuf);
        goto done;
    }
    if ((rc = run_gnuplot(script, log, err)))
        goto done;
    int fd = open(part, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        rc = siam_error_set(err, SIAM_ERR_IO, "gnuplot wrote no %s (%s)", part, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto done;
    }
    close(fd);
    if (rename(part, path) != 0)
        rc = siam_error_set(err, SIAM_ERR_IO, "cannot rename %s to --picture %s (%s)", part, path,
                            strerror(errno));
done:
    unlink(part);
    unlink(data);
    unlink(script);
    unlink(log);
    rmdir(dirbuf);
    return rc;
}
