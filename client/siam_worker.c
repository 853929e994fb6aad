/* siam_worker: one worker's training run (data, pairs, shard, epochs through a loss head,
 * evaluation, metrics CSV, checkpoint, report), shared by siam-train and siam-client. */
#include "siam_worker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_atomic.h"
#include "siam_checkpoint.h"
#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_metrics.h"
#include "siam_model.h"
#include "siam_pairs.h"
#include "siam_pk.h"
#include "siam_schedule.h"
#include "siam_wire.h"

#define COMPONENT           "train"
#define DROP_FACTOR_DEFAULT 0.1f

/* The learning-rate schedule of c's options over c->epochs. SIAM_ERR_ARG naming the flag and the
 * fix: siam_worker_check_options prints it, siam_worker_run refuses to start with it. */
static int worker_schedule(const siam_worker_config *c, siam_schedule *s, siam_error *err) {
    *s = siam_schedule_default((double)c->lr, (double)c->epochs);
    siam_error e = {0};
    const char *name = c->lr_schedule ? c->lr_schedule : "constant";
    if (siam_schedule_parse(&s->kind, name, &e))
        return siam_error_set(err, SIAM_ERR_ARG, "--lr-schedule: %s", e.msg);
    if (siam_schedule_parse_drops(s, c->lr_drop_epochs, &e))
        return siam_error_set(err, SIAM_ERR_ARG, "--lr-drop-epochs: %s", e.msg);
    s->drop_factor = (double)c->lr_drop_factor;
    s->floor = (double)c->lr_floor;
    s->warmup_epochs = (double)c->warmup_epochs;
    if (s->kind != SIAM_SCHEDULE_STEP && s->n_drops > 0)
        return siam_error_set(
            err, SIAM_ERR_ARG,
            "--lr-drop-epochs %s applies to --lr-schedule step only, and the "
            "schedule is %s: add --lr-schedule step or leave --lr-drop-epochs out",
            c->lr_drop_epochs, name);
    if (s->kind != SIAM_SCHEDULE_STEP && c->lr_drop_factor != DROP_FACTOR_DEFAULT)
        return siam_error_set(
            err, SIAM_ERR_ARG,
            "--lr-drop-factor %g applies to --lr-schedule step only, and the "
            "schedule is %s: add --lr-schedule step or leave --lr-drop-factor out",
            (double)c->lr_drop_factor, name);
    if (s->kind != SIAM_SCHEDULE_COSINE && c->lr_floor != 0.0f)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "--lr-floor %g applies to --lr-schedule cosine only, and the "
                              "schedule is %s: add --lr-schedule cosine or leave --lr-floor out",
                              (double)c->lr_floor, name);
    if (s->kind == SIAM_SCHEDULE_STEP && s->n_drops == 0)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "--lr-schedule step needs --lr-drop-epochs E1[,E2..], the epochs "
                              "after which the rate is multiplied by --lr-drop-factor (e.g. "
                              "--epochs 20 --lr-drop-epochs 15, as the FaceNet seed)");
    for (int i = 0; i < s->n_drops; i++)
        if (!(s->drop_epochs[i] < s->epochs))
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "--lr-drop-epochs: %g is not below --epochs %d, so that drop "
                                  "would never happen: lower it or raise --epochs",
                                  s->drop_epochs[i], c->epochs);
    if (s->kind == SIAM_SCHEDULE_COSINE && !(s->floor < s->lr))
        return siam_error_set(err, SIAM_ERR_ARG,
                              "--lr-floor %g must be below --lr %g (cosine decays from --lr to "
                              "--lr-floor)",
                              s->floor, s->lr);
    if (!(s->warmup_epochs < s->epochs))
        return siam_error_set(err, SIAM_ERR_ARG,
                              "--warmup-epochs %g must be below --epochs %d (the rate would never "
                              "reach --lr): lower it or raise --epochs",
                              s->warmup_epochs, c->epochs);
    if (siam_schedule_check(s, &e)) /* what the flags' bounds do not already exclude */
        return siam_error_set(err, SIAM_ERR_ARG, "learning-rate schedule: %s", e.msg);
    return SIAM_OK;
}

/* "cosine to 0 over 20 epochs after a 1-epoch warm-up" for the log */
static void describe_schedule(const siam_schedule *s, char *out, size_t cap) {
    int o = 0;
    if (s->kind == SIAM_SCHEDULE_STEP) {
        o = snprintf(out, cap, "step: %g x %g after epoch", s->lr, s->drop_factor);
        for (int i = 0; i < s->n_drops && o > 0 && (size_t)o < cap; i++)
            o += snprintf(out + o, cap - (size_t)o, "%s %g", i ? "," : "", s->drop_epochs[i]);
    } else if (s->kind == SIAM_SCHEDULE_COSINE) {
        o = snprintf(out, cap, "cosine from %g to %g over %g epochs", s->lr, s->floor, s->epochs);
    } else {
        o = snprintf(out, cap, "constant %g", s->lr);
    }
    if (s->warmup_epochs > 0 && o > 0 && (size_t)o < cap)
        snprintf(out + o, cap - (size_t)o, ", linear warm-up over %g epoch(s)", s->warmup_epochs);
}

typedef struct {
    siam_progress progress;
    FILE *csv; /* in-memory rows of the metrics file */
    int epoch;
    uint64_t step0;
} run_state;

static void on_step(void *ctx, uint64_t s, uint64_t steps, uint64_t pairs, double loss) {
    run_state *r = ctx;
    siam_progress_update(&r->progress, s, pairs, loss);
    if (r->csv && (s == 1 || s % 50 == 0 || s == steps))
        fprintf(r->csv, "step,%d,%llu,%.6f,,,,,,\n", r->epoch, (unsigned long long)(r->step0 + s),
                loss);
}

/* The traffic so far: every RPC's bytes summed, and the training RPC's row (Train, or TrainSet
 * for the set head). 0 without a wire. */
typedef struct {
    int n;
    siam_rpc_traffic rows[SIAM_RPC_TRAFFIC_MAX];
    uint64_t sent, received;
    const siam_rpc_traffic *train; /* NULL when it has not been called */
} traffic_now;

static int read_traffic(const siam_worker_config *c, int set, traffic_now *t) {
    memset(t, 0, sizeof *t);
    if (!c->traffic)
        return 0;
    t->n = c->traffic(c->traffic_ctx, t->rows, SIAM_RPC_TRAFFIC_MAX);
    const char *train = set ? SIAM_METHOD_TRAIN_SET : SIAM_METHOD_TRAIN;
    for (int i = 0; i < t->n; i++) {
        t->sent += t->rows[i].bytes_sent;
        t->received += t->rows[i].bytes_received;
        if (strcmp(t->rows[i].method, train) == 0)
            t->train = &t->rows[i];
    }
    return 1;
}

/* "Train" of "/siam.v1.Siamese/Train": the report's key */
static const char *method_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void print_report(const siam_worker_config *c, const siam_model *m, size_t n_train_pairs,
                         const siam_pair_report *r, double test_acc_at_train_best, float train_best,
                         double pairs_per_s, uint64_t trained) {
    /* set training counts images, not pairs */
    int set = c->head && strcmp(c->head, "set") == 0;
    traffic_now t;
    int wire = read_traffic(c, set, &t);
    double per_up = wire && t.train && trained ? (double)t.train->bytes_sent / (double)trained : 0;
    double per_down =
        wire && t.train && trained ? (double)t.train->bytes_received / (double)trained : 0;
    if (c->json) {
        printf("{\"model\": \"%s\", \"spec\": \"%s\", \"epochs\": %d, \"batch_size\": %d, "
               "\"train_pairs\": %zu, \"test_pairs\": %zu, \"threshold\": %.6g, "
               "\"accuracy\": %.6f, \"roc_auc\": %.6f, \"best_threshold_train\": %.6g, "
               "\"accuracy_at_best_threshold\": %.6f, \"val_at_far_1e-3\": %.6f, "
               "\"val_threshold\": %.6g, \"far\": %.6g, \"positive_distance_mean\": %.6f, "
               "\"positive_distance_std\": %.6f, \"negative_distance_mean\": %.6f, "
               "\"negative_distance_std\": %.6f, \"%s\": %.1f",
               c->model, siam_model_spec(m), c->epochs, c->batch, n_train_pairs, r->n,
               (double)r->threshold, r->accuracy, r->auc, (double)train_best,
               test_acc_at_train_best, r->val, (double)r->val_threshold, r->far, r->stats.pos_mean,
               r->stats.pos_std, r->stats.neg_mean, r->stats.neg_std,
               set ? "train_images_per_s" : "train_pairs_per_s", pairs_per_s);
        if (set)
            printf(", \"head\": \"set\", \"classes_per_batch\": %d, \"images_per_class\": %d",
                   c->classes_per_batch, c->images_per_class);
        if (c->workers > 1)
            printf(", \"worker_index\": %d, \"workers\": %d", c->worker_index, c->workers);
        if (wire) {
            /* serialized message bytes (siam_rpc.h): the training RPC's per pair or image, and
             * every RPC's */
            printf(", \"bytes_sent_total\": %llu, \"bytes_received_total\": %llu, "
                   "\"bytes_per_%s_up\": %.1f, \"bytes_per_%s_down\": %.1f, \"traffic\": {",
                   (unsigned long long)t.sent, (unsigned long long)t.received,
                   set ? "image" : "pair", per_up, set ? "image" : "pair", per_down);
            for (int i = 0; i < t.n; i++)
                printf("%s\"%s\": {\"calls\": %llu, \"messages_sent\": %llu, \"bytes_sent\": "
                       "%llu, \"messages_received\": %llu, \"bytes_received\": %llu}",
                       i ? ", " : "", method_name(t.rows[i].method),
                       (unsigned long long)t.rows[i].calls,
                       (unsigned long long)t.rows[i].messages_sent,
                       (unsigned long long)t.rows[i].bytes_sent,
                       (unsigned long long)t.rows[i].messages_received,
                       (unsigned long long)t.rows[i].bytes_received);
            printf("}");
        }
        printf("}\n");
        return;
    }
    printf("\n%s: %s, %d epoch(s), batch %d, %zu training pairs", c->prog, c->model, c->epochs,
           c->batch, n_train_pairs);
    if (c->workers > 1)
        printf(" (worker %d/%d)", c->worker_index, c->workers);
    printf("\n");
    printf("  %-34s %zu\n", "test pairs", r->n);
    printf("  %-34s %.4f\n", "accuracy (D <= m/2)", r->accuracy);
    printf("  %-34s %.4f\n", "ROC AUC", r->auc);
    printf("  %-34s %.4f (threshold %.3f, from train pairs)\n", "accuracy at best threshold",
           test_acc_at_train_best, (double)train_best);
    printf("  %-34s %.4f (threshold %.3f, FAR %.5f)\n", "VAL at FAR = 1e-3, test pairs", r->val,
           (double)r->val_threshold, r->far);
    printf("  %-34s %.3f +- %.3f\n", "distance, positive pairs", r->stats.pos_mean,
           r->stats.pos_std);
    printf("  %-34s %.3f +- %.3f\n", "distance, negative pairs", r->stats.neg_mean,
           r->stats.neg_std);
    printf("  %-34s %.0f\n", set ? "training images/s" : "training pairs/s", pairs_per_s);
    if (wire) {
        printf("  %-34s %llu sent, %llu received (all RPCs)\n", "message bytes",
               (unsigned long long)t.sent, (unsigned long long)t.received);
        printf("  %-34s %.0f up, %.0f down (%s)\n", set ? "bytes per image" : "bytes per pair",
               per_up, per_down, set ? "TrainSet" : "Train");
    }
}

int siam_worker_run(const siam_worker_config *c, siam_loss_head_fn head, void *head_ctx,
                    siam_error *err) {
    siam_dataset train = {0}, test = {0};
    siam_pairs all = {0}, mine = {0}, test_pairs = {0};
    siam_model *m = NULL;
    siam_trainer tr = {0};
    siam_set_trainer st = {0};
    siam_pk *pk = NULL;
    int set = c->head && strcmp(c->head, "set") == 0;
    size_t img_begin = 0, img_end = 0; /* set: this worker's shard of the training images */
    float *dist = NULL, *train_dist = NULL;
    char *csv_buf = NULL;
    size_t csv_len = 0;
    run_state rs = {0};
    siam_optim_kind kind;
    char who[48] = ""; /* " worker 0/2" when the pairs are sharded */
    if (c->workers > 1)
        snprintf(who, sizeof who, " worker %d/%d", c->worker_index, c->workers);
    siam_schedule sched;
    int rc = siam_optim_parse(c->optimizer, &kind, err);
    if (rc || (rc = worker_schedule(c, &sched, err)))
        goto done;
    if (set && c->in_flight > 1) {
        rc = siam_error_set(err, SIAM_ERR_ARG,
                            "--in-flight %d: only --head pairs keeps several batches in flight; "
                            "use --in-flight 1 with --head set",
                            c->in_flight);
        goto done;
    }
    if (set && !c->set_head) {
        rc = siam_error_set(err, SIAM_ERR_ARG, "--head set: this program has no set loss head");
        goto done;
    }

    /* an output path that cannot be written fails now, not after the training it would keep */
    if ((c->checkpoint && (rc = siam_atomic_check_writable(c->checkpoint, err))) ||
        (c->metrics && (rc = siam_atomic_check_writable(c->metrics, err))))
        goto done;

    double t0 = siam_now();
    if ((rc = siam_dataset_load(&train, c->data, SIAM_SPLIT_TRAIN, c->train_limit, err)) ||
        (rc = siam_dataset_load(&test, c->data, SIAM_SPLIT_TEST, c->test_limit, err)))
        goto done;
    LOG_INFO(COMPONENT, "loaded %zu training and %zu test images from %s in %.2f s", train.n,
             test.n, c->data ? c->data : SIAM_DATA_DIR_DEFAULT, siam_now() - t0);
    if ((rc = siam_pairs_make(&all, train.labels, train.n, 10, c->seed, err)) ||
        (rc = siam_pairs_make(&test_pairs, test.labels, test.n, 10, c->seed + 1, err)))
        goto done;
    size_t begin, end;
    siam_pairs_shuffle(&all, c->seed);
    if ((rc = siam_shard_range(all.n, c->worker_index, c->workers, &begin, &end, err)) ||
        (rc = siam_pairs_slice(&mine, &all, begin, end, err)))
        goto done;
    LOG_INFO(COMPONENT, "worker %d of %d: %zu of %zu training pairs; %zu test pairs",
             c->worker_index, c->workers, mine.n, all.n, test_pairs.n);

    if (set) {
        /* set batches come from the images, so the images are sharded (the pairs above still
         * give the report's training-pair threshold) */
        if ((rc = siam_shard_range(train.n, c->worker_index, c->workers, &img_begin, &img_end,
                                   err)) ||
            (rc = siam_pk_create(&pk, train.labels + img_begin, img_end - img_begin,
                                 c->classes_per_batch, c->images_per_class, c->seed, err)))
            goto done;
        int skipped_classes;
        size_t skipped_images;
        siam_pk_skipped(pk, &skipped_classes, &skipped_images);
        LOG_INFO(COMPONENT,
                 "set head: images %zu..%zu of %zu, %d classes x %d images per batch, %zu batches "
                 "per epoch (%d classes with fewer than %d images skipped: %zu images)",
                 img_begin, img_end, train.n, c->classes_per_batch, c->images_per_class,
                 siam_pk_batches_per_epoch(pk), skipped_classes, c->images_per_class,
                 skipped_images);
    }
    if ((rc = siam_model_create(&m, c->model, c->seed, err)) ||
        (set ? (rc = siam_set_trainer_init(&st, m, kind, c->lr,
                                           c->classes_per_batch * c->images_per_class, err))
             : (rc = siam_trainer_init(&tr, m, kind, c->lr, c->batch, err))))
        goto done;
    if (!set && c->in_flight > 1 &&
        (rc = siam_trainer_set_in_flight(&tr, c->in_flight, c->split, err)))
        goto done;
    if (!set && c->in_flight > 1)
        LOG_INFO(COMPONENT,
                 "%d batches in flight: each batch's forward uses the weights of %d steps "
                 "earlier",
                 c->in_flight, c->in_flight - 1);
    tr.conv = c->conv;             /* labels go to the head in its convention */
    st.collapse_scale = c->margin; /* the set loss's margin (the server's for siam-client) */
    tr.schedule = st.schedule = sched;
    tr.steps_per_epoch = c->batch > 0 ? (mine.n + (size_t)c->batch - 1) / (size_t)c->batch : 0;
    st.steps_per_epoch = set ? siam_pk_batches_per_epoch(pk) : 0;
    st.progress = c->set_progress;
    if (set) {
        siam_augment aug = {0};
        if ((rc = siam_augment_parse(&aug, c->augment, err)))
            goto done;
        /* its own stream per worker, apart from the sampler's and the initialisation's */
        siam_set_trainer_augment(
            &st, &aug, c->seed * 0x9E3779B97F4A7C15ull + 0xA06 + (uint64_t)c->worker_index);
        if (!siam_augment_is_none(&aug))
            LOG_INFO(COMPONENT, "augmenting every training batch: %s%s%s", aug.flip ? "mirror" : "",
                     aug.flip && aug.shift ? ", " : "", aug.shift ? "shift up to 2 pixels" : "");
    }
    if (!siam_schedule_is_constant(&sched)) {
        char what[256];
        describe_schedule(&sched, what, sizeof what);
        LOG_INFO(COMPONENT, "learning rate: %s; %llu steps per epoch", what,
                 (unsigned long long)(set ? st.steps_per_epoch : tr.steps_per_epoch));
    }
    if (c->sync) {
        tr.sync = st.sync = c->sync;
        tr.sync_ctx = st.sync_ctx = c->sync_ctx;
        tr.sync_every = st.sync_every = c->sync_every;
        /* join: start from the global model */
        if ((rc = set ? siam_set_trainer_sync(&st, err) : siam_trainer_sync(&tr, err)))
            goto done;
    }
    LOG_INFO(COMPONENT, "model %s: %zu parameters (%s)", c->model, siam_model_num_params(m),
             siam_model_spec(m));
    dist = malloc(test_pairs.n * sizeof *dist);
    if (!dist) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (c->metrics) {
        rs.csv = open_memstream(&csv_buf, &csv_len);
        if (!rs.csv) {
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the metrics file");
            goto done;
        }
        fprintf(rs.csv, "kind,epoch,step,loss,val_loss,accuracy,roc_auc,pairs_per_s,bytes_sent,"
                        "bytes_received\n");
    }

    double train_time = 0.0;
    uint64_t trained_pairs = 0;
    for (int e = 1; e <= c->epochs; e++) {
        char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", e, c->epochs);
        if (e > 1)
            siam_pairs_shuffle(&mine, c->seed + (uint64_t)e);
        rs.epoch = e;
        double loss, val_loss, te = siam_now();
        uint64_t trained_now;
        siam_set_epoch_stats es = {0};
        if (set) {
            rs.step0 = st.step;
            siam_progress_begin(&rs.progress, label, siam_pk_batches_per_epoch(pk));
            rc = siam_set_trainer_epoch(&st, &train, img_begin, pk, c->set_head, c->set_head_ctx,
                                        on_step, &rs, &es, err);
            te = siam_now() - te;
            loss = es.mean_loss;
            trained_now = es.images;
            siam_progress_end(&rs.progress, st.step - rs.step0, es.images, loss);
            if (!rc && st.sync && st.samples_since_sync > 0) /* evaluate the global model */
                rc = siam_set_trainer_sync(&st, err);
        } else {
            rs.step0 = tr.step;
            siam_progress_begin(&rs.progress, label,
                                (mine.n + (size_t)c->batch - 1) / (size_t)c->batch);
            rc = siam_trainer_epoch(&tr, &train, &mine, head, head_ctx, on_step, &rs, &loss, err);
            te = siam_now() - te;
            trained_now = mine.n;
            siam_progress_end(&rs.progress, tr.step - rs.step0, mine.n, loss);
            if (!rc && tr.sync && tr.samples_since_sync > 0) /* evaluate the global model */
                rc = siam_trainer_sync(&tr, err);
        }
        if (rc)
            goto done;
        train_time += te;
        trained_pairs += trained_now;
        /* the test pairs cost a forward pass of 40,000 images (about as long as an epoch of a
         * worker's shard with cnn2), so --eval-every may thin them out; the last epoch is always
         * evaluated, the final report needs its distances */
        int evaluated = e == c->epochs || (c->eval_every > 0 && e % c->eval_every == 0);
        double acc = NAN, auc = NAN;
        val_loss = NAN;
        if (evaluated) {
            if ((rc = siam_evaluate_distances(m, &test, &test_pairs, c->margin, SIAM_LABELS_SIMILAR,
                                              dist, &val_loss, err)))
                goto done;
            acc = siam_metrics_accuracy(dist, test_pairs.labels, test_pairs.n, c->margin / 2);
            if ((rc = siam_metrics_roc_auc(dist, test_pairs.labels, test_pairs.n, &auc, err)))
                goto done;
        }
        char test_part[96] = "test pairs not evaluated (--eval-every)";
        if (evaluated)
            snprintf(test_part, sizeof test_part, "val_loss=%.4f accuracy=%.4f roc_auc=%.4f",
                     val_loss, acc, auc);
        /* lr: the rate of the epoch's last step */
        if (set)
            LOG_INFO(COMPONENT,
                     "epoch %d/%d%s set loss=%.4f lr=%.3g active=%.3f mean_norm=%.3f "
                     "hardest_pos=%.3f hardest_neg=%.3f degenerate_sets=%llu %s images/s=%.0f",
                     e, c->epochs, who, loss, (double)st.opt.lr, es.mean_active, es.mean_norm,
                     es.mean_hardest_pos, es.mean_hardest_neg,
                     (unsigned long long)es.degenerate_steps, test_part, (double)trained_now / te);
        else
            LOG_INFO(COMPONENT, "epoch %d/%d%s loss=%.4f lr=%.3g %s pairs/s=%.0f", e, c->epochs,
                     who, loss, (double)tr.opt.lr, test_part, (double)mine.n / te);
        /* bytes: every RPC's so far, the epoch's sync included; empty without a wire */
        char bytes[64] = ",";
        traffic_now tn;
        if (rs.csv && read_traffic(c, set, &tn))
            snprintf(bytes, sizeof bytes, "%llu,%llu", (unsigned long long)tn.sent,
                     (unsigned long long)tn.received);
        if (rs.csv && evaluated)
            fprintf(rs.csv, "epoch,%d,%llu,%.6f,%.6f,%.6f,%.6f,%.1f,%s\n", e,
                    (unsigned long long)(set ? st.step : tr.step), loss, val_loss, acc, auc,
                    (double)trained_now / te, bytes);
        else if (rs.csv) /* not evaluated (--eval-every): the test-pair columns stay empty */
            fprintf(rs.csv, "epoch,%d,%llu,%.6f,,,,%.1f,%s\n", e,
                    (unsigned long long)(set ? st.step : tr.step), loss, (double)trained_now / te,
                    bytes);
    }

    /* the reported best threshold is chosen on training pairs, then applied to the test pairs */
    siam_pair_report rep;
    float train_best = c->margin / 2;
    double train_best_acc;
    train_dist = malloc(mine.n * sizeof *train_dist);
    if (!train_dist) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = siam_evaluate_distances(m, &train, &mine, c->margin, SIAM_LABELS_SIMILAR, train_dist,
                                      NULL, err)) ||
        (rc = siam_metrics_best_threshold(train_dist, mine.labels, mine.n, &train_best,
                                          &train_best_acc, err)) ||
        (rc = siam_metrics_report(dist, test_pairs.labels, test_pairs.n, c->margin / 2, &rep, err)))
        goto done;
    double test_at_best = siam_metrics_accuracy(dist, test_pairs.labels, test_pairs.n, train_best);

    if (c->checkpoint) {
        siam_optim *o = set ? &st.opt : &tr.opt;
        size_t n_opt = siam_optim_state_size(o);
        float *opt = n_opt ? malloc(n_opt * sizeof(float)) : NULL;
        if (n_opt && !opt) {
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (opt)
            siam_optim_state_save(o, opt);
        rc = siam_checkpoint_save(c->checkpoint, siam_model_spec(m), set ? st.step : tr.step, 0,
                                  siam_model_params(m), siam_model_num_params(m), opt, n_opt, err);
        free(opt);
        if (rc)
            goto done;
        LOG_INFO(COMPONENT, "checkpoint written to %s", c->checkpoint);
    }
    if (rs.csv) {
        fclose(rs.csv);
        rs.csv = NULL;
        if ((rc = siam_atomic_write(c->metrics, csv_buf, csv_len, err)))
            goto done;
        LOG_INFO(COMPONENT, "metrics written to %s", c->metrics);
    }
    print_report(c, m, mine.n, &rep, test_at_best, train_best,
                 train_time > 0 ? (double)trained_pairs / train_time : 0.0, trained_pairs);

done:
    if (rs.csv)
        fclose(rs.csv);
    free(csv_buf);
    free(dist);
    free(train_dist);
    siam_trainer_free(&tr);
    siam_set_trainer_free(&st);
    siam_pk_free(pk);
    siam_model_free(m);
    siam_pairs_free(&all);
    siam_pairs_free(&mine);
    siam_pairs_free(&test_pairs);
    siam_dataset_free(&train);
    siam_dataset_free(&test);
    return rc;
}

void siam_worker_options(siam_worker_config *c, int *threads, siam_option *out) {
    c->model = "mlp";
    c->optimizer = "adam";
    c->data = SIAM_DATA_DIR_DEFAULT;
    c->epochs = 5;
    c->batch = 0;
    c->lr = 1e-3f;
    c->lr_schedule = "constant";
    c->lr_drop_epochs = NULL;
    c->lr_drop_factor = DROP_FACTOR_DEFAULT;
    c->lr_floor = 0.0f;
    c->warmup_epochs = 0.0f;
    c->seed = 42;
    c->worker_index = 0;
    c->workers = 1;
    c->head = "pairs";
    c->classes_per_batch = 8;
    c->images_per_class = 4;
    *threads = 0;
    c->recipe = NULL;
    c->eval_every = 1;
    c->augment = "none";
    const siam_option opts[SIAM_WORKER_N_OPTIONS] = {
        {"recipe", SIAM_OPT_STRING, &c->recipe, 0, 0, NULL, "pairs|mlp|cnn",
         "measured settings (model, head, loss, sampling, schedule; docs/USAGE.md#recipes) as "
         "defaults that the other options override"},
        {"model", SIAM_OPT_STRING, &c->model, 0, 0, NULL, "mlp|mlp2|cnn|cnn2|SPEC",
         "embedding network: a builder name or a spec (docs/DESIGN.md)"},
        {"epochs", SIAM_OPT_INT, &c->epochs, 1, 1000, NULL, "N", "passes over the training pairs"},
        {"batch-size", SIAM_OPT_INT, &c->batch, 0, 65536, NULL, "B",
         "pairs per step; 0 = the model's reference default (mlp 857, others 128)"},
        {"lr", SIAM_OPT_FLOAT, &c->lr, 1e-8, 10, NULL, "RATE",
         "learning rate (the schedule's starting rate)"},
        {"lr-schedule", SIAM_OPT_CHOICE, &c->lr_schedule, 0, 0, "constant|step|cosine", NULL,
         "constant: --lr throughout; step: times --lr-drop-factor after each --lr-drop-epochs; "
         "cosine: down to --lr-floor at the last epoch"},
        {"lr-drop-epochs", SIAM_OPT_STRING, &c->lr_drop_epochs, 0, 0, NULL, "E1[,E2..]",
         "--lr-schedule step: the epochs after which the rate drops, e.g. 15 of --epochs 20 "
         "(default none)"},
        {"lr-drop-factor", SIAM_OPT_FLOAT, &c->lr_drop_factor, 1e-6, 1, NULL, "F",
         "--lr-schedule step: the rate's multiplier at each drop"},
        {"lr-floor", SIAM_OPT_FLOAT, &c->lr_floor, 0, 10, NULL, "RATE",
         "--lr-schedule cosine: the rate at the end of training"},
        {"warmup-epochs", SIAM_OPT_FLOAT, &c->warmup_epochs, 0, 1000, NULL, "W",
         "raise the rate linearly from 0 over the first W epochs, with any schedule (0 = no "
         "warm-up)"},
        {"optimizer", SIAM_OPT_CHOICE, &c->optimizer, 0, 0, "adam|sgd", NULL, "optimizer"},
        {"seed", SIAM_OPT_U64, &c->seed, 0, 9e18, NULL, "N",
         "seed for pairs, shuffling, initialisation, dropout"},
        {"data", SIAM_OPT_STRING, &c->data, 0, 0, NULL, "DIR", "Fashion-MNIST IDX directory"},
        {"train-limit", SIAM_OPT_U64, &c->train_limit, 0, 1e9, NULL, "N",
         "use only the first N training images (0 = all)"},
        {"test-limit", SIAM_OPT_U64, &c->test_limit, 0, 1e9, NULL, "N",
         "use only the first N test images (0 = all)"},
        {"worker-index", SIAM_OPT_INT, &c->worker_index, 0, 65535, NULL, "I",
         "train on shard I of the training pairs"},
        {"workers", SIAM_OPT_INT, &c->workers, 1, 65536, NULL, "N", "number of shards"},
        {"checkpoint", SIAM_OPT_STRING, &c->checkpoint, 0, 0, NULL, "PATH",
         "write the trained model here (atomically)"},
        {"metrics", SIAM_OPT_STRING, &c->metrics, 0, 0, NULL, "FILE.csv",
         "write step and epoch metrics as CSV"},
        {"json", SIAM_OPT_FLAG, &c->json, 0, 0, NULL, NULL, "print the final report as JSON"},
        {"threads", SIAM_OPT_INT, threads, 0, 256, NULL, "N",
         "OpenBLAS threads (0 = library default)"},
        {"eval-every", SIAM_OPT_INT, &c->eval_every, 0, 1000, NULL, "N",
         "evaluate on the test pairs after every N-th epoch and the last (0 = the last only)"},
        {"augment", SIAM_OPT_CHOICE, &c->augment, 0, 0, "none|flip|shift|flip-shift", NULL,
         "--head set: mirror training images left-right at random (flip), move them up to 2 "
         "pixels each way (shift), or both"},
        {"head", SIAM_OPT_CHOICE, &c->head, 0, 0, "pairs|set", NULL,
         "loss head: contrastive over pairs, or a set loss over P x K batches with in-batch "
         "mining"},
        {"classes-per-batch", SIAM_OPT_INT, &c->classes_per_batch, 2, 4096, NULL, "P",
         "--head set: classes in every batch"},
        {"images-per-class", SIAM_OPT_INT, &c->images_per_class, 2, 4096, NULL, "K",
         "--head set: images of each class in every batch"},
    };
    memcpy(out, opts, sizeof opts);
}

int siam_worker_preset(siam_worker_config *c, int argc, char **argv, const siam_recipe **out) {
    *out = NULL;
    const char *name = siam_recipe_in_argv(argc, argv);
    if (!name)
        return -1;
    siam_error err = {0};
    const siam_recipe *r;
    if (siam_recipe_lookup(name, &r, &err) != SIAM_OK) {
        fprintf(stderr, "%s: --recipe: %s\n", c->prog, err.msg);
        return 2;
    }
    c->model = r->model;
    c->head = r->head;
    c->epochs = r->epochs;
    c->batch = r->batch;
    c->classes_per_batch = r->classes_per_batch;
    c->images_per_class = r->images_per_class;
    c->lr = r->lr;
    c->lr_schedule = r->lr_schedule;
    c->warmup_epochs = r->warmup_epochs;
    c->eval_every = r->eval_every;
    c->augment = r->augment;
    *out = r;
    return -1;
}

int siam_worker_check_options(siam_worker_config *c) {
    if (strcmp(c->augment, "none") != 0 && strcmp(c->head, "set") != 0) {
        fprintf(stderr,
                "%s: --augment %s applies to --head set only (add --head set or leave "
                "--augment out)\n",
                c->prog, c->augment);
        return 2;
    }
    if (c->worker_index >= c->workers) {
        fprintf(stderr, "%s: --worker-index %d must be below --workers %d\n", c->prog,
                c->worker_index, c->workers);
        return 2;
    }
    /* refused here, before any data is read, so a typo costs no loading time */
    siam_error err = {0};
    if (siam_model_spec_parse(c->model, NULL, NULL, &err) != SIAM_OK) {
        fprintf(stderr, "%s: --model '%s' is not mlp|mlp2|cnn|cnn2 or a valid spec: %s\n", c->prog,
                c->model, err.msg);
        return 2;
    }
    if (c->classes_per_batch * c->images_per_class > SIAM_SET_LOSS_MAX_N) {
        fprintf(stderr,
                "%s: --classes-per-batch %d x --images-per-class %d is over the set "
                "loss's %d images per batch\n",
                c->prog, c->classes_per_batch, c->images_per_class, SIAM_SET_LOSS_MAX_N);
        return 2;
    }
    siam_schedule sched;
    if (worker_schedule(c, &sched, &err) != SIAM_OK) {
        fprintf(stderr, "%s: %s\n", c->prog, err.msg);
        return 2;
    }
    /* 857 is the mlp's reference batch; the conv models and specs take the cnn's 128 */
    if (c->batch == 0)
        c->batch = strcmp(c->model, "mlp") == 0 ? 857 : 128;
    return -1;
}
