/* siam_eval: the `siam-client evaluate` and `siam-client predict` subcommands (siam_eval.c,
 * siam_predict.c).
 *
 * evaluate: loads a checkpoint, embeds the test and training images once, and reports the pair
 * metrics on the test pairs (accuracy at m/2, the best threshold chosen on the training pairs,
 * ROC AUC, distance statistics), VAL at FAR 1e-3 (threshold from sampled pairs of training
 * images, VAL and FAR on sampled pairs of test images: lib/eval/siam_val), the
 * k-nearest-neighbour (k = 5) classification accuracy of the test images against the training
 * images and test-set retrieval, in embedding space and, for comparison, on raw pixels.
 * --plots-dir writes the data files scripts/plot.sh draws, with the PCA map of the test
 * embeddings (lib/eval/siam_pca).
 *
 * predict: the distance, similarity score and same/different verdict of one pair of images,
 * given as test-set indices or as 28x28 PGM files.
 *
 * argv[0] is the subcommand's name ("evaluate", "predict"); both return the process exit code:
 * 0 done, 1 a runtime error (message on stderr), 2 a bad command line. */
#ifndef SIAM_EVAL_H
#define SIAM_EVAL_H

int siam_eval_main(int argc, char **argv);
int siam_predict_main(int argc, char **argv);

#endif
