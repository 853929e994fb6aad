/* test_optim: Adam and SGD steps against a double-precision computation of the same formulas,
 * and Adam minimising a quadratic. */
#include "test_util.h"

#include <string.h>

#include "siam_optim.h"

int main(void) {
    tu_trap_fp();
    siam_error err = {0};
    enum { N = 5 };
    float p[N] = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f};
    double ref[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++)
        ref[i] = p[i];
    siam_optim o;
    CHECK(siam_optim_init(&o, SIAM_OPTIM_ADAM, N, 1e-2f, &err) == SIAM_OK, "%s", err.msg);
    for (int t = 1; t <= 3; t++) {
        float g[N];
        for (int i = 0; i < N; i++)
            g[i] = (float)(0.1 * (i + 1) * t - 0.2);
        siam_optim_step(&o, p, g);
        double lr_t = 1e-2 * sqrt(1 - pow(0.999, t)) / (1 - pow(0.9, t));
        for (int i = 0; i < N; i++) {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * (double)g[i] * g[i];
            ref[i] -= lr_t * m[i] / (sqrt(v[i]) + 1e-7);
        }
    }
    for (int i = 0; i < N; i++)
        CHECK_NEAR(p[i], ref[i], 1e-6, "adam parameter after 3 steps");
    /* the first Adam step moves every parameter with a non-zero gradient by about lr */
    CHECK(o.t == 3, "step count %llu", (unsigned long long)o.t);

    /* state round trip */
    size_t ns = siam_optim_state_size(&o);
    CHECK(ns == 2 * N + 1, "state size %zu", ns);
    float *st = malloc(ns * sizeof *st);
    siam_optim_state_save(&o, st);
    siam_optim o2;
    siam_optim_init(&o2, SIAM_OPTIM_ADAM, N, 1e-2f, &err);
    CHECK(siam_optim_state_load(&o2, st, ns, &err) == SIAM_OK, "%s", err.msg);
    CHECK(o2.t == 3 && memcmp(o2.state, o.state, 2 * N * sizeof(float)) == 0, "state restored");
    CHECK(siam_optim_state_load(&o2, st, ns - 1, &err) == SIAM_ERR_MISMATCH, "short state");
    free(st);
    siam_optim_free(&o2);
    siam_optim_free(&o);

    /* SGD */
    float q[2] = {1.0f, 2.0f}, gq[2] = {0.5f, -1.0f};
    siam_optim_init(&o, SIAM_OPTIM_SGD, 2, 0.1f, &err);
    siam_optim_step(&o, q, gq);
    CHECK_NEAR(q[0], 0.95, 1e-7, "sgd");
    CHECK_NEAR(q[1], 2.1, 1e-7, "sgd");
    CHECK(siam_optim_state_size(&o) == 0, "sgd has no state");
    siam_optim_free(&o);

    /* Adam minimises f(p) = sum (p - 3)^2 */
    float r[3] = {0, 10, -5};
    siam_optim_init(&o, SIAM_OPTIM_ADAM, 3, 0.1f, &err);
    for (int t = 0; t < 2000; t++) {
        float g[3];
        for (int i = 0; i < 3; i++)
            g[i] = 2 * (r[i] - 3);
        siam_optim_step(&o, r, g);
    }
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(r[i], 3.0, 1e-2, "adam converges");
    siam_optim_free(&o);

    /* bad arguments */
    CHECK(siam_optim_init(&o, SIAM_OPTIM_ADAM, 3, -1.0f, &err) == SIAM_ERR_ARG, "negative lr");
    CHECK(strstr(err.msg, "learning rate") != NULL, "message: %s", err.msg);
    siam_optim_kind k;
    CHECK(siam_optim_parse("adamw", &k, &err) == SIAM_ERR_ARG, "unknown optimizer");
    CHECK(siam_optim_parse("sgd", &k, &err) == SIAM_OK && k == SIAM_OPTIM_SGD, "parse sgd");
    return tu_finish();
}
