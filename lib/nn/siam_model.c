/* siam_model: builds a network from its spec and runs forward/backward passes over it. */
#include "siam_model.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_checkpoint.h"
#include "siam_layers.h"
#include "siam_rng.h"
#include "siam_tensor.h"

#define MAX_LAYERS  32
#define BN_MOMENTUM 0.99f /* Keras defaults, as in the original project */
#define BN_EPS      1e-3f
#define EMBED_CHUNK 512
/* PyTorch's F.normalize default: far below any norm a trained embedding has, so it only keeps an
 * all-zero row (a dead layer before it) finite */
#define L2_EPS 1e-12f

typedef enum {
    L_DENSE,
    L_CONV,
    L_MAXPOOL,
    L_BATCHNORM,
    L_RELU,
    L_ELU,
    L_DROPOUT,
    L_L2NORM
} layer_kind;

typedef struct {
    layer_kind kind;
    int in_h, in_w, in_c;    /* input shape of one item (dense: 1 x 1 x I) */
    int out_h, out_w, out_c; /* output shape of one item */
    int kh, kw;              /* conv kernel */
    int ph, pw;              /* conv zero padding on each side (0: 'valid') */
    float rate;              /* dropout */
    size_t w_off, b_off;     /* dense/conv weights and bias; batchnorm gamma and beta */
    size_t stat_off;         /* batchnorm running mean (C) then running var (C) */
} layer;

/* Per-pass buffers, each (cap, ...) for the batch capacity cap. */
typedef struct {
    const float *x;               /* the input of the last forward, owned by the caller */
    int B;                        /* batch of the last forward */
    int trained;                  /* last forward was in training mode */
    float *act[MAX_LAYERS];       /* output of each layer (cap, out_size) */
    float *aux[MAX_LAYERS];       /* conv: im2col; batchnorm: xhat; dropout: mask; l2norm: norms */
    float *inv_std[MAX_LAYERS];   /* batchnorm (C) */
    uint32_t *argmax[MAX_LAYERS]; /* maxpool */
} pass_state;

struct siam_model {
    char spec[SIAM_SPEC_MAX];
    int n_layers;
    layer layers[MAX_LAYERS];
    int in_h, in_w, in_c;
    size_t n_params, n_trainable;
    float *params; /* (n_params) */
    float *grads;  /* (n_trainable) */
    int cap;       /* batch capacity of the buffers below */
    int n_passes;  /* passes in use (siam_model_set_passes) */
    pass_state pass[SIAM_MODEL_MAX_PASSES];
    float *dbuf[2]; /* backward ping-pong gradients (cap, max_act) */
    float *dcol;    /* conv backward workspace (max col) */
    siam_rng dropout_rng;
};

static const char SPEC_MLP[] =
    "in=28x28x1 dense128 relu dropout0.5 dense128 relu dropout0.3 dense128 relu";
static const char SPEC_CNN[] = "in=28x28x1 conv3x3x32 elu maxpool2 batchnorm conv3x3x64 elu "
                               "maxpool2 batchnorm flatten dense128";

/* A deeper embedding net for the 2-core budget: 'same' convs keep 28x28 and 14x14 so the pools
 * alone set the size, batchnorm before relu, a third conv at 7x7 instead of more pooling (7 does
 * not halve evenly), then a linear 64-d embedding made unit length for cosine-style search. */
static const char SPEC_CNN2[] =
    "in=28x28x1 conv3x3x32s batchnorm relu maxpool2 conv3x3x64s batchnorm relu maxpool2 "
    "conv3x3x64s batchnorm relu flatten dense128 relu dense64 l2norm";

/* The set-head mlp: wider first layer, no dropout (in-batch mining already sees every image
 * against every other), and a linear 64-d unit-length embedding like cnn2's. */
static const char SPEC_MLP2[] = "in=28x28x1 dense256 relu dense128 relu dense64 l2norm";

const char *siam_model_spec_for(const char *name_or_spec) {
    if (strcmp(name_or_spec, "mlp") == 0)
        return SPEC_MLP;
    if (strcmp(name_or_spec, "mlp2") == 0)
        return SPEC_MLP2;
    if (strcmp(name_or_spec, "cnn") == 0)
        return SPEC_CNN;
    if (strcmp(name_or_spec, "cnn2") == 0)
        return SPEC_CNN2;
    return name_or_spec;
}

static size_t out_size(const layer *l) {
    return (size_t)l->out_h * l->out_w * l->out_c;
}

static size_t in_size(const layer *l) {
    return (size_t)l->in_h * l->in_w * l->in_c;
}

/* Parses a positive integer at *s, advancing it. */
static int parse_int(const char **s, int *v) {
    char *end;
    errno = 0;
    long x = strtol(*s, &end, 10);
    if (end == *s || errno || x <= 0 || x > 1 << 20)
        return -1;
    *v = (int)x;
    *s = end;
    return 0;
}

/* The floats of one item of shape (h, w, c), each at most 2^20, when they fit the int that the
 * layers count them in; -1 otherwise. */
static int item_floats(int h, int w, int c) {
    int64_t n = (int64_t)h * w * c;
    return n > INT_MAX ? -1 : (int)n;
}

/* Appends one layer from token tok given the current shape (h, w, c). */
static int add_layer(siam_model *m, const char *tok, int *h, int *w, int *c, size_t *n_train,
                     size_t *n_stat, siam_error *err) {
    layer l;
    memset(&l, 0, sizeof l);
    l.in_h = *h, l.in_w = *w, l.in_c = *c;
    const char *s = tok;
    if (item_floats(*h, *w, *c) < 0)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "model spec: '%s' gets an input of %dx%dx%d, more than %d floats",
                              tok, *h, *w, *c, INT_MAX);
    if (strcmp(tok, "flatten") == 0) {
        *c = item_floats(*h, *w, *c);
        *h = *w = 1;
        return SIAM_OK;
    }
    if (m->n_layers == MAX_LAYERS)
        return siam_error_set(err, SIAM_ERR_ARG, "model spec: more than %d layers", MAX_LAYERS);
    if (strncmp(s, "dense", 5) == 0) {
        s += 5;
        int o;
        if (parse_int(&s, &o) || *s)
            goto bad;
        l.kind = L_DENSE;
        l.in_h = l.in_w = 1;
        l.in_c = item_floats(*h, *w, *c); /* a dense layer flattens its input */
        l.out_h = l.out_w = 1;
        l.out_c = o;
        l.w_off = *n_train;
        l.b_off = l.w_off + (size_t)l.in_c * o;
        *n_train = l.b_off + (size_t)o;
    } else if (strncmp(s, "conv", 4) == 0) {
        s += 4;
        int kh, kw, k;
        if (parse_int(&s, &kh) || *s++ != 'x' || parse_int(&s, &kw) || *s++ != 'x' ||
            parse_int(&s, &k))
            goto bad;
        /* a trailing 's' is 'same' padding: (k-1)/2 zeros each side keep the input's size, which
         * needs odd kernels to be symmetric */
        int same = *s == 's';
        if (*(s + same))
            goto bad;
        if (same && (kh % 2 == 0 || kw % 2 == 0))
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "model spec: '%s': same padding needs odd kernel sizes", tok);
        if (!same && (kh > *h || kw > *w))
            return siam_error_set(
                err, SIAM_ERR_ARG,
                "model spec: '%s' needs an input of at least %dx%d, it gets %dx%d", tok, kh, kw, *h,
                *w);
        l.kind = L_CONV;
        l.kh = kh, l.kw = kw;
        l.ph = same ? (kh - 1) / 2 : 0, l.pw = same ? (kw - 1) / 2 : 0;
        l.out_h = *h + 2 * l.ph - kh + 1, l.out_w = *w + 2 * l.pw - kw + 1, l.out_c = k;
        l.w_off = *n_train;
        l.b_off = l.w_off + (size_t)kh * kw * *c * k;
        *n_train = l.b_off + (size_t)k;
    } else if (strcmp(s, "maxpool2") == 0) {
        if (*h < 2 || *w < 2)
            return siam_error_set(err, SIAM_ERR_ARG, "model spec: maxpool2 on a %dx%d input", *h,
                                  *w);
        l.kind = L_MAXPOOL;
        l.out_h = *h / 2, l.out_w = *w / 2, l.out_c = *c;
    } else if (strcmp(s, "batchnorm") == 0) {
        l.kind = L_BATCHNORM;
        l.out_h = *h, l.out_w = *w, l.out_c = *c;
        l.w_off = *n_train;
        l.b_off = l.w_off + (size_t)*c;
        *n_train = l.b_off + (size_t)*c;
        l.stat_off = *n_stat;
        *n_stat += 2 * (size_t)*c;
    } else if (strcmp(s, "relu") == 0 || strcmp(s, "elu") == 0) {
        l.kind = s[0] == 'r' ? L_RELU : L_ELU;
        l.out_h = *h, l.out_w = *w, l.out_c = *c;
    } else if (strcmp(s, "l2norm") == 0) {
        /* normalises each item's whole output (it flattens as dense does), so an image's
         * embedding is a unit vector whatever shape the layer before it has */
        l.kind = L_L2NORM;
        l.in_h = l.in_w = 1;
        l.in_c = item_floats(*h, *w, *c);
        l.out_h = l.out_w = 1;
        l.out_c = l.in_c;
    } else if (strncmp(s, "dropout", 7) == 0) {
        char *end;
        errno = 0;
        double r = strtod(s + 7, &end);
        if (end == s + 7 || *end || errno || !(r >= 0.0 && r < 1.0))
            goto bad;
        l.kind = L_DROPOUT;
        l.rate = (float)r;
        l.out_h = *h, l.out_w = *w, l.out_c = *c;
    } else {
        goto bad;
    }
    *h = l.out_h, *w = l.out_w, *c = l.out_c;
    m->layers[m->n_layers++] = l;
    return SIAM_OK;
bad:
    return siam_error_set(err, SIAM_ERR_ARG,
                          "model spec: cannot parse layer '%s' (expected denseN, convKxKxN[s], "
                          "maxpool2, batchnorm, relu, elu, dropoutR, l2norm, flatten)",
                          tok);
}

static int parse_spec(siam_model *m, const char *spec, siam_error *err) {
    if (strlen(spec) >= SIAM_SPEC_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "model spec longer than %d characters",
                              SIAM_SPEC_MAX - 1);
    char buf[SIAM_SPEC_MAX];
    strcpy(buf, spec);
    char *save = NULL;
    char *tok = strtok_r(buf, " \t\n", &save);
    const char *s = tok ? tok : "";
    int h, w, c;
    if (strncmp(s, "in=", 3) != 0)
        return siam_error_set(
            err, SIAM_ERR_ARG,
            "model spec '%s': must be mlp, mlp2, cnn, cnn2, or start with in=HxWxC", spec);
    s += 3;
    if (parse_int(&s, &h) || *s++ != 'x' || parse_int(&s, &w) || *s++ != 'x' || parse_int(&s, &c) ||
        *s)
        return siam_error_set(err, SIAM_ERR_ARG, "model spec: cannot parse input shape '%s'", tok);
    m->in_h = h, m->in_w = w, m->in_c = c;
    size_t n_train = 0, n_stat = 0;
    /* canonical form: tokens joined by single spaces */
    int len = snprintf(m->spec, sizeof m->spec, "%s", tok);
    while ((tok = strtok_r(NULL, " \t\n", &save))) {
        int rc = add_layer(m, tok, &h, &w, &c, &n_train, &n_stat, err);
        if (rc)
            return rc;
        len += snprintf(m->spec + len, sizeof m->spec - (size_t)len, " %s", tok);
    }
    if (m->n_layers == 0)
        return siam_error_set(err, SIAM_ERR_ARG, "model spec '%s' has no layers", spec);
    if (item_floats(h, w, c) < 0)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "model spec: an output of %dx%dx%d, more than %d floats", h, w, c,
                              INT_MAX);
    /* running statistics live after the trainable parameters */
    for (int i = 0; i < m->n_layers; i++)
        m->layers[i].stat_off += n_train;
    m->n_trainable = n_train;
    m->n_params = n_train + n_stat;
    return SIAM_OK;
}

/* Weights: He (Kaiming) uniform with PyTorch's gain for Linear and Conv2d layers (a = sqrt(5)):
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Glorot uniform, the Keras default, leaves most of the mlp's
 * final ReLU units dead after one epoch and a lower ROC AUC (docs/BENCHMARKS.md). Biases zero;
 * batchnorm gamma 1, beta 0, running mean 0, running var 1. */
static void init_params(siam_model *m, uint64_t seed) {
    siam_rng rng;
    siam_rng_seed(&rng, seed);
    float *p = m->params;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        size_t fan_in;
        if (l->kind == L_DENSE) {
            fan_in = (size_t)l->in_c;
        } else if (l->kind == L_CONV) {
            fan_in = (size_t)l->kh * l->kw * l->in_c;
        } else {
            if (l->kind == L_BATCHNORM) {
                for (int k = 0; k < l->out_c; k++) {
                    p[l->w_off + k] = 1.0f;               /* gamma */
                    p[l->b_off + k] = 0.0f;               /* beta */
                    p[l->stat_off + k] = 0.0f;            /* running mean */
                    p[l->stat_off + l->out_c + k] = 1.0f; /* running var */
                }
            }
            continue;
        }
        float limit = 1.0f / sqrtf((float)fan_in);
        size_t n_w = fan_in * (size_t)l->out_c;
        for (size_t k = 0; k < n_w; k++)
            p[l->w_off + k] = (2.0f * siam_rng_uniform(&rng) - 1.0f) * limit;
        memset(p + l->b_off, 0, (size_t)l->out_c * sizeof(float));
    }
}

int siam_model_spec_parse(const char *name_or_spec, char *canon, size_t *n_params,
                          siam_error *err) {
    siam_model *m = calloc(1, sizeof *m);
    if (!m)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the model");
    int rc = parse_spec(m, siam_model_spec_for(name_or_spec), err);
    if (rc == SIAM_OK && canon)
        memcpy(canon, m->spec, sizeof m->spec);
    if (rc == SIAM_OK && n_params)
        *n_params = m->n_params;
    free(m);
    return rc;
}

int siam_model_spec_shape(const char *name_or_spec, siam_model_shape *out, siam_error *err) {
    memset(out, 0, sizeof *out);
    siam_model *m = calloc(1, sizeof *m);
    if (!m)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the model");
    int rc = parse_spec(m, siam_model_spec_for(name_or_spec), err);
    if (rc == SIAM_OK) {
        out->in_h = m->in_h, out->in_w = m->in_w, out->in_c = m->in_c;
        out->out_dim = siam_model_output_size(m);
        out->n_params = m->n_params;
    }
    free(m);
    return rc;
}

int siam_model_create(siam_model **out, const char *name_or_spec, uint64_t seed, siam_error *err) {
    *out = NULL;
    siam_model *m = calloc(1, sizeof *m);
    if (!m)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the model");
    int rc = parse_spec(m, siam_model_spec_for(name_or_spec), err);
    if (rc) {
        free(m);
        return rc;
    }
    m->params = siam_alloc_floats(m->n_params);
    m->grads = siam_alloc_floats(m->n_trainable);
    if (!m->params || !m->grads) {
        size_t n = m->n_params;
        siam_model_free(m);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu parameters", n);
    }
    init_params(m, seed);
    siam_rng_seed(&m->dropout_rng, seed ^ 0x5eed0d0d5eedULL);
    m->n_passes = SIAM_MODEL_PASSES;
    *out = m;
    return SIAM_OK;
}

static void free_buffers(siam_model *m) {
    for (int p = 0; p < SIAM_MODEL_MAX_PASSES; p++) {
        for (int i = 0; i < MAX_LAYERS; i++) {
            siam_free(m->pass[p].act[i]);
            siam_free(m->pass[p].aux[i]);
            siam_free(m->pass[p].inv_std[i]);
            free(m->pass[p].argmax[i]);
        }
        memset(&m->pass[p], 0, sizeof m->pass[p]);
    }
    siam_free(m->dbuf[0]);
    siam_free(m->dbuf[1]);
    siam_free(m->dcol);
    m->dbuf[0] = m->dbuf[1] = m->dcol = NULL;
    m->cap = 0;
}

void siam_model_free(siam_model *m) {
    if (!m)
        return;
    free_buffers(m);
    siam_free(m->params);
    siam_free(m->grads);
    free(m);
}

int siam_model_set_passes(siam_model *m, int n, siam_error *err) {
    if (n < SIAM_MODEL_PASSES || n > SIAM_MODEL_MAX_PASSES)
        return siam_error_set(err, SIAM_ERR_ARG, "model passes must be %d..%d, got %d",
                              SIAM_MODEL_PASSES, SIAM_MODEL_MAX_PASSES, n);
    free_buffers(m);
    m->n_passes = n;
    return SIAM_OK;
}

/* Grows every per-pass buffer to hold a batch of B. */
static int reserve(siam_model *m, int B, siam_error *err) {
    if (B <= m->cap)
        return SIAM_OK;
    free_buffers(m);
    size_t max_act = (size_t)m->in_h * m->in_w * m->in_c, max_col = 1;
    int ok = 1;
    for (int p = 0; p < m->n_passes && ok; p++) {
        pass_state *ps = &m->pass[p];
        for (int i = 0; i < m->n_layers && ok; i++) {
            const layer *l = &m->layers[i];
            size_t n = (size_t)B * out_size(l);
            if (out_size(l) > max_act)
                max_act = out_size(l);
            ok = (ps->act[i] = siam_alloc_floats(n)) != NULL;
            if (l->kind == L_CONV) {
                size_t col =
                    siam_conv2d_col_size(B, l->in_h, l->in_w, l->in_c, l->kh, l->kw, l->ph, l->pw);
                if (col > max_col)
                    max_col = col;
                ok = ok && (ps->aux[i] = siam_alloc_floats(col)) != NULL;
            } else if (l->kind == L_BATCHNORM) {
                ok = ok && (ps->aux[i] = siam_alloc_floats(n)) != NULL &&
                     (ps->inv_std[i] = siam_alloc_floats((size_t)l->out_c)) != NULL;
            } else if (l->kind == L_DROPOUT) {
                ok = ok && (ps->aux[i] = siam_alloc_floats(n)) != NULL;
            } else if (l->kind == L_L2NORM) {
                ok = ok && (ps->aux[i] = siam_alloc_floats((size_t)B)) != NULL;
            } else if (l->kind == L_MAXPOOL) {
                ok = ok && (ps->argmax[i] = calloc(n, sizeof(uint32_t))) != NULL;
            }
        }
    }
    if (ok) {
        m->dbuf[0] = siam_alloc_floats((size_t)B * max_act);
        m->dbuf[1] = siam_alloc_floats((size_t)B * max_act);
        m->dcol = siam_alloc_floats(max_col);
        ok = m->dbuf[0] && m->dbuf[1] && m->dcol;
    }
    if (!ok) {
        free_buffers(m);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for activations of batch %d", B);
    }
    m->cap = B;
    return SIAM_OK;
}

int siam_model_forward(siam_model *m, int pass, const float *x, int B, int training,
                       const float **out, siam_error *err) {
    if (pass < 0 || pass >= m->n_passes || B <= 0)
        return siam_error_set(err, SIAM_ERR_ARG, "forward: bad pass %d or batch %d", pass, B);
    int rc = reserve(m, B, err);
    if (rc)
        return rc;
    pass_state *ps = &m->pass[pass];
    ps->x = x;
    ps->B = B;
    ps->trained = training;
    const float *in = x;
    float *P = m->params;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        float *y = ps->act[i];
        size_t n = (size_t)B * out_size(l);
        switch (l->kind) {
        /* Inference takes the batch-independent products (siam_matmul_rows): an image's
         * embedding is then the same bits alone or at any row of any batch, so an image is at
         * distance exactly 0 from itself and a pair's answer does not depend on the request it
         * came in. Every other inference layer is element-wise or per item already. Training
         * keeps sgemm (faster on the large backward products), so a training forward may differ
         * from an inference forward in the last bits. */
        case L_DENSE:
            if (training)
                siam_dense_forward(y, in, P + l->w_off, P + l->b_off, B, l->in_c, l->out_c);
            else
                siam_dense_infer(y, in, P + l->w_off, P + l->b_off, B, l->in_c, l->out_c);
            break;
        case L_CONV:
            if (training)
                siam_conv2d_forward(y, ps->aux[i], in, P + l->w_off, P + l->b_off, B, l->in_h,
                                    l->in_w, l->in_c, l->kh, l->kw, l->ph, l->pw, l->out_c);
            else
                siam_conv2d_infer(y, ps->aux[i], in, P + l->w_off, P + l->b_off, B, l->in_h,
                                  l->in_w, l->in_c, l->kh, l->kw, l->ph, l->pw, l->out_c);
            break;
        case L_MAXPOOL:
            siam_maxpool2_forward(y, ps->argmax[i], in, B, l->in_h, l->in_w, l->in_c);
            break;
        case L_BATCHNORM: {
            int N = B * l->out_h * l->out_w, C = l->out_c;
            float *rmean = P + l->stat_off, *rvar = P + l->stat_off + C;
            if (training)
                siam_batchnorm_forward_train(y, ps->aux[i], ps->inv_std[i], rmean, rvar, in,
                                             P + l->w_off, P + l->b_off, N, C, BN_MOMENTUM, BN_EPS);
            else
                siam_batchnorm_forward_infer(y, in, P + l->w_off, P + l->b_off, rmean, rvar, N, C,
                                             BN_EPS);
            break;
        }
        case L_RELU:
            siam_relu_forward(y, in, n);
            break;
        case L_ELU:
            siam_elu_forward(y, in, n);
            break;
        case L_DROPOUT:
            if (training)
                siam_dropout_forward(y, ps->aux[i], in, n, l->rate, &m->dropout_rng);
            else
                memcpy(y, in, n * sizeof(float));
            break;
        case L_L2NORM: /* per row in both modes: inference stays batch-independent */
            siam_l2norm_forward(y, ps->aux[i], in, B, l->in_c, L2_EPS);
            break;
        }
        in = y;
    }
    *out = in;
    return SIAM_OK;
}

void siam_model_backward(siam_model *m, int pass, const float *dout) {
    pass_state *ps = &m->pass[pass];
    int B = ps->B;
    const float *P = m->params;
    float *G = m->grads;
    const float *dy = dout;
    int cur = 0;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const layer *l = &m->layers[i];
        const float *x = i > 0 ? ps->act[i - 1] : ps->x;
        /* the first layer's input gradient is never needed */
        float *dx = i > 0 ? m->dbuf[cur] : NULL;
        size_t n_in = (size_t)B * in_size(l);
        if (dx)
            memset(dx, 0, n_in * sizeof(float));
        switch (l->kind) {
        case L_DENSE:
            siam_dense_backward(dx, G + l->w_off, G + l->b_off, dy, x, P + l->w_off, B, l->in_c,
                                l->out_c);
            break;
        case L_CONV:
            siam_conv2d_backward(dx, G + l->w_off, G + l->b_off, dx ? m->dcol : NULL, dy,
                                 ps->aux[i], P + l->w_off, B, l->in_h, l->in_w, l->in_c, l->kh,
                                 l->kw, l->ph, l->pw, l->out_c);
            break;
        case L_MAXPOOL:
            if (dx)
                siam_maxpool2_backward(dx, dy, ps->argmax[i], B, l->in_h, l->in_w, l->in_c);
            break;
        case L_BATCHNORM:
            siam_batchnorm_backward(dx, G + l->w_off, G + l->b_off, dy, ps->aux[i], ps->inv_std[i],
                                    P + l->w_off, B * l->out_h * l->out_w, l->out_c);
            break;
        case L_RELU:
            if (dx)
                siam_relu_backward(dx, dy, ps->act[i], n_in);
            break;
        case L_ELU:
            if (dx)
                siam_elu_backward(dx, dy, x, ps->act[i], n_in);
            break;
        case L_DROPOUT:
            if (dx)
                siam_dropout_backward(dx, dy, ps->aux[i], n_in);
            break;
        case L_L2NORM:
            siam_l2norm_backward(dx, dy, ps->act[i], ps->aux[i], B, l->in_c, L2_EPS);
            break;
        }
        dy = dx;
        cur ^= 1;
    }
}

int siam_model_embed(siam_model *m, const float *x, size_t n, float *out, siam_error *err) {
    size_t in = (size_t)siam_model_input_size(m), od = (size_t)siam_model_output_size(m);
    for (size_t b = 0; b < n; b += EMBED_CHUNK) {
        int B = (int)(n - b < EMBED_CHUNK ? n - b : EMBED_CHUNK);
        const float *y;
        int rc = siam_model_forward(m, 0, x + b * in, B, 0, &y, err);
        if (rc)
            return rc;
        memcpy(out + b * od, y, (size_t)B * od * sizeof(float));
    }
    return SIAM_OK;
}

const char *siam_model_spec(const siam_model *m) {
    return m->spec;
}

int siam_model_input_size(const siam_model *m) {
    return m->in_h * m->in_w * m->in_c;
}

void siam_model_input_shape(const siam_model *m, int *h, int *w, int *c) {
    *h = m->in_h;
    *w = m->in_w;
    *c = m->in_c;
}

int siam_model_output_size(const siam_model *m) {
    return (int)out_size(&m->layers[m->n_layers - 1]);
}

size_t siam_model_num_params(const siam_model *m) {
    return m->n_params;
}

size_t siam_model_num_trainable(const siam_model *m) {
    return m->n_trainable;
}

float *siam_model_params(siam_model *m) {
    return m->params;
}

float *siam_model_grads(siam_model *m) {
    return m->grads;
}

void siam_model_zero_grads(siam_model *m) {
    memset(m->grads, 0, m->n_trainable * sizeof(float));
}

void siam_model_seed_dropout(siam_model *m, uint64_t seed) {
    siam_rng_seed(&m->dropout_rng, seed);
}
