/*
 * Compiled kernels of vitspec.impl.resize and vitspec.impl.pixels on the CPU (SPEC-NOTES §1.2, §1.3).
 *
 * resample_pass: one bicubic pass of Pillow's separable resampler over uint8 pixels with C interleaved
 * channels, given the per-output fixed-point weights that vitspec.impl.resize.pillow_weights computes (Pillow
 * Resample.c: 22 fractional bits). Each output is 2**21 plus the integer sum of weight * pixel, shifted right by
 * 22 bits and clipped to 0..255 (Pillow's clip8), so the result is the same integer whatever the summation order.
 * Sums are formed in unsigned 32-bit arithmetic and read back as signed: Pillow's own int accumulator.
 *
 * to_pixel_values: a resized (H, W, F*C) uint8 image -> float rows (N, C*T*P*P) in merge-block row order and
 * (C, T, P, P) column order, each value looked up in a per-channel table of 256 normalized values; frame
 * min(g*T + t, F - 1) fills temporal slot t of group g (a still image fills every slot; a video's last frame
 * repeats).
 *
 * Every function works on a band [lo, hi) of its outermost output axis and releases the GIL, so Python threads
 * run bands in parallel. Buffers are C-contiguous; sizes are checked against the dimensions given.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

static inline uint8_t clip8(uint32_t sum)
{
    int32_t v = (int32_t)sum;
    if (v >= (1 << PRECISION_BITS << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Output lines [lo, hi) of a vertical pass over lines of `line` values: dst[y] = clip8(2**21 +
 * sum_k w[y, k] * src[first[y] + k]); acc holds `line` sums. */
VECTOR_CLONES
static void lines_band(const uint8_t *src, uint8_t *dst, Py_ssize_t line, const int32_t *first,
                       const int32_t *weights, Py_ssize_t taps, Py_ssize_t lo, Py_ssize_t hi, uint32_t *acc)
{
    for (Py_ssize_t y = lo; y < hi; y++) {
        const int32_t *w = weights + y * taps;
        for (Py_ssize_t j = 0; j < line; j++)
            acc[j] = 1u << (PRECISION_BITS - 1);
        for (Py_ssize_t k = 0; k < taps; k++) {
            if (w[k] == 0)
                continue; /* taps past the input end carry weight 0 */
            const uint8_t *s = src + ((Py_ssize_t)first[y] + k) * line;
            uint32_t wk = (uint32_t)w[k];
            for (Py_ssize_t j = 0; j < line; j++)
                acc[j] += wk * (uint32_t)s[j];
        }
        uint8_t *d = dst + y * line;
        for (Py_ssize_t j = 0; j < line; j++)
            d[j] = clip8(acc[j]);
    }
}

/* Output rows [lo, hi) of a vertical pass over image rows of `line` = width * channels values. */
static int rows_band(const uint8_t *src, uint8_t *dst, Py_ssize_t line, const int32_t *first,
                     const int32_t *weights, Py_ssize_t taps, Py_ssize_t lo, Py_ssize_t hi)
{
    uint32_t *acc = malloc(sizeof(uint32_t) * (size_t)(line > 0 ? line : 1));
    if (acc == NULL)
        return -1;
    lines_band(src, dst, line, first, weights, taps, lo, hi, acc);
    free(acc);
    return 0;
}

/* Rows [lo, hi) of a horizontal pass: dst[r, x, c] = clip8(2**21 + sum_k w[x, k] * src[r, first[x] + k, c]).
 * TILE rows at a time are transposed so that one input column of the tile is a contiguous line of
 * TILE * channels values, and the sums run over those lines as in the vertical pass (vectorized). */
#define TILE 16
static int cols_band(const uint8_t *src, uint8_t *dst, Py_ssize_t in_w, Py_ssize_t out_w, Py_ssize_t channels,
                     const int32_t *first, const int32_t *weights, Py_ssize_t taps, Py_ssize_t lo, Py_ssize_t hi)
{
    Py_ssize_t lanes = TILE * channels;
    uint8_t *columns = calloc((size_t)(in_w * lanes), 1);   /* input tile, column-major */
    uint8_t *results = malloc((size_t)(out_w * lanes));      /* output tile, column-major */
    uint32_t *acc = malloc(sizeof(uint32_t) * (size_t)lanes);
    if (columns == NULL || results == NULL || acc == NULL) {
        free(columns);
        free(results);
        free(acc);
        return -1;
    }
    for (Py_ssize_t r0 = lo; r0 < hi; r0 += TILE) {
        Py_ssize_t rows = hi - r0 < TILE ? hi - r0 : TILE;
        for (Py_ssize_t r = 0; r < rows; r++) {
            const uint8_t *s = src + (r0 + r) * in_w * channels;
            for (Py_ssize_t x = 0; x < in_w; x++)
                for (Py_ssize_t c = 0; c < channels; c++)
                    columns[x * lanes + r * channels + c] = s[x * channels + c];
        }
        lines_band(columns, results, lanes, first, weights, taps, 0, out_w, acc); /* the vertical pass's sums */
        for (Py_ssize_t r = 0; r < rows; r++) {
            uint8_t *d = dst + (r0 + r) * out_w * channels;
            for (Py_ssize_t x = 0; x < out_w; x++)
                for (Py_ssize_t c = 0; c < channels; c++)
                    d[x * channels + c] = results[x * lanes + r * channels + c];
        }
    }
    free(columns);
    free(results);
    free(acc);
    return 0;
}

/* Weights are read only where they are non-zero or inside the input: check every tap index once. */
static int check_taps(const char *name, const int32_t *first, const int32_t *weights, Py_ssize_t outputs,
                      Py_ssize_t taps, Py_ssize_t in_size)
{
    for (Py_ssize_t i = 0; i < outputs; i++) {
        if (first[i] < 0 || first[i] >= in_size) {
            PyErr_Format(PyExc_ValueError, "%s: first tap %d of output %zd is outside the input of size %zd", name,
                         first[i], i, in_size);
            return -1;
        }
        for (Py_ssize_t k = 0; k < taps; k++) {
            if (weights[i * taps + k] != 0 && first[i] + k >= in_size) {
                PyErr_Format(PyExc_ValueError, "%s: tap %zd of output %zd reads past the input of size %zd", name,
                             k, i, in_size);
                return -1;
            }
        }
    }
    return 0;
}

static int check_size(const char *name, Py_buffer *b, Py_ssize_t expected)
{
    if (b->len != expected) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zd bytes for the sizes given, got %zd", name, expected, b->len);
        return -1;
    }
    return 0;
}

static void release(Py_buffer *buffers, int count)
{
    for (int i = 0; i < count; i++)
        PyBuffer_Release(&buffers[i]);
}

/* resample_pass(src, dst, axis, in_h, in_w, out_size, channels, first, weights, taps, lo, hi): one pass over uint8
 * (in_h, in_w, channels) src. axis 0 (vertical): dst is (out_size, in_w, channels), output rows [lo, hi).
 * axis 1 (horizontal): dst is (in_h, out_size, channels), rows [lo, hi). */
static PyObject *resample_pass(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer b[4]; /* src, dst, first, weights */
    Py_ssize_t axis, in_h, in_w, out_size, channels, taps, lo, hi;
    if (!PyArg_ParseTuple(args, "y*w*nnnnny*y*nnn", &b[0], &b[1], &axis, &in_h, &in_w, &out_size, &channels, &b[2],
                          &b[3], &taps, &lo, &hi))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t in_size = axis == 0 ? in_h : in_w, bands = axis == 0 ? out_size : in_h;
    if ((axis != 0 && axis != 1) || in_h <= 0 || in_w <= 0 || out_size <= 0 || channels <= 0 || taps <= 0 || lo < 0 ||
        hi > bands || lo > hi) {
        PyErr_SetString(PyExc_ValueError, "resample_pass: axis must be 0 or 1, sizes positive and 0 <= lo <= hi <= "
                                          "the output rows");
        goto done;
    }
    Py_ssize_t out_pixels = axis == 0 ? out_size * in_w : in_h * out_size;
    if (check_size("src", &b[0], in_h * in_w * channels) || check_size("dst", &b[1], out_pixels * channels) ||
        check_size("first", &b[2], out_size * 4) || check_size("weights", &b[3], out_size * taps * 4) ||
        check_taps("resample_pass", b[2].buf, b[3].buf, out_size, taps, in_size))
        goto done;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    if (axis == 0)
        failed = rows_band(b[0].buf, b[1].buf, in_w * channels, b[2].buf, b[3].buf, taps, lo, hi);
    else
        failed = cols_band(b[0].buf, b[1].buf, in_w, out_size, channels, b[2].buf, b[3].buf, taps, lo, hi);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    release(b, 4);
    return result;
}

/* to_pixel_values(src, dst, lut, frames, height, width, channels, P, T, m, lo, hi): rows of merge blocks
 * [lo, hi) (counted over groups * height / (P*m)) of float32 (itemsize 4) or float64 (itemsize 8) output. */
static PyObject *to_pixel_values(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer b[3]; /* src, dst, lut */
    Py_ssize_t F, H, W, C, P, T, m, lo, hi, itemsize;
    if (!PyArg_ParseTuple(args, "y*w*y*nnnnnnnnnn", &b[0], &b[1], &b[2], &F, &H, &W, &C, &P, &T, &m, &itemsize, &lo,
                          &hi))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t side = P * m;
    if (F <= 0 || H <= 0 || W <= 0 || C <= 0 || P <= 0 || T <= 0 || m <= 0 || H % side || W % side ||
        (itemsize != 4 && itemsize != 8)) {
        PyErr_SetString(PyExc_ValueError, "to_pixel_values: sizes must be positive, height and width multiples of "
                                          "patch_size*merge_size, itemsize 4 or 8");
        goto done;
    }
    Py_ssize_t groups = (F + T - 1) / T, block_rows = groups * (H / side), bw = W / side;
    Py_ssize_t row = C * T * P * P, patches = groups * (H / P) * (W / P);
    if (lo < 0 || hi > block_rows || lo > hi) {
        PyErr_SetString(PyExc_ValueError, "to_pixel_values: 0 <= lo <= hi <= groups * height / (patch*merge)");
        goto done;
    }
    if (check_size("src", &b[0], H * W * F * C) || check_size("dst", &b[1], patches * row * itemsize) ||
        check_size("lut", &b[2], C * 256 * itemsize))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *s = b[0].buf;
    Py_ssize_t pixel = F * C; /* bytes per source pixel: all frames' channels */
    for (Py_ssize_t br = lo; br < hi; br++) {
        Py_ssize_t g = br / (H / side), bh = br % (H / side);
        for (Py_ssize_t col_block = 0; col_block < bw; col_block++)
            for (Py_ssize_t mh = 0; mh < m; mh++)
                for (Py_ssize_t mw = 0; mw < m; mw++) {
                    Py_ssize_t n = ((br * bw + col_block) * m + mh) * m + mw;
                    Py_ssize_t y0 = (bh * m + mh) * P, x0 = (col_block * m + mw) * P;
                    for (Py_ssize_t c = 0; c < C; c++)
                        for (Py_ssize_t t = 0; t < T; t++) {
                            Py_ssize_t f = g * T + t < F ? g * T + t : F - 1;
                            Py_ssize_t col = (c * T + t) * P * P;
                            if (t > 0 && f == F - 1 && g * T + t - 1 >= F - 1) { /* same frame as slot t - 1 */
                                char *out = (char *)b[1].buf + (n * row + col) * itemsize;
                                memcpy(out, out - P * P * itemsize, (size_t)(P * P * itemsize));
                                continue;
                            }
                            const uint8_t *base = s + (y0 * W + x0) * pixel + f * C + c;
                            if (itemsize == 4) {
                                const float *table = (const float *)b[2].buf + c * 256;
                                float *out = (float *)b[1].buf + n * row + col;
                                for (Py_ssize_t py = 0; py < P; py++)
                                    for (Py_ssize_t px = 0; px < P; px++)
                                        out[py * P + px] = table[base[(py * W + px) * pixel]];
                            } else {
                                const double *table = (const double *)b[2].buf + c * 256;
                                double *out = (double *)b[1].buf + n * row + col;
                                for (Py_ssize_t py = 0; py < P; py++)
                                    for (Py_ssize_t px = 0; px < P; px++)
                                        out[py * P + px] = table[base[(py * W + px) * pixel]];
                            }
                        }
                }
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(b, 3);
    return result;
}

static PyMethodDef methods[] = {
    {"resample_pass", resample_pass, METH_VARARGS, "One Pillow bicubic pass over output rows [lo, hi)."},
    {"to_pixel_values", to_pixel_values, METH_VARARGS, "Resized uint8 frames -> normalized pixel_values rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vitspec.impl._resize_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__resize_native(void) { return PyModule_Create(&module); }
