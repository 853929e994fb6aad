/* siam_search: the `siam-client search` and `siam-client gallery-add` subcommands, callers of the
 * server's gallery (siam_search.c, the picture in siam_search_picture.c).
 *
 * search: query images (PGM files of the model's input shape, or images of the Fashion-MNIST
 * test or training set by index) are sent to the server's Search in batches; per query it prints
 * the k nearest gallery items (rank, id, label with the Fashion-MNIST class name for labels 0-9,
 * distance, score), the predicted label with its confidence and the model round, and for images
 * of the data set how often the top-1 and the predicted label equal their class. --picture
 * draws every query beside its top matches (gnuplot).
 *
 * gallery-add: labelled images (PGM files, or images of the data set with their class as the
 * label unless --label or --labels says otherwise) are added with AddToGallery; prints the ids.
 *
 * argv[0] is the subcommand's name; both return the exit code: 0 done, 1 a runtime error (the
 * server unreachable or refusing, a bad file: one line on stderr naming it and the fix), 2 a bad
 * command line. */
#ifndef SIAM_SEARCH_H
#define SIAM_SEARCH_H

int siam_search_main(int argc, char **argv);
int siam_gallery_add_main(int argc, char **argv);

#endif
