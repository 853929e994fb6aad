/* layering probe: includes a header of the nn layer. CMake compiles it twice, linked to siam_nn
 * (must build) and to siam_base only (must fail: base sits below nn and cannot see its headers).
 * tests/layering_test.sh builds both. */
#include "siam_model.h"

int siam_layering_probe(void);
int siam_layering_probe(void) {
    return (int)sizeof(siam_model *);
}
