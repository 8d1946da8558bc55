/* lvisnb.evaluation._results_json: a strict, column-wise reader of LVIS results files (C, no numpy).
 *
 * An LVIS results file is a JSON list of records {"image_id": int, "category_id": int,
 * "score": number, "bbox": [x, y, w, h], "segmentation": {"size": [h, w], "counts": str}}.
 * scan() reads such a file straight into columns, with no Python object per record, and the
 * GIL released (so the ground truth can load meanwhile). It takes only what the kit's typed
 * msgspec decoding takes (lvisnb.evaluation.results.Record): ids are JSON integers within int64,
 * scores and box values JSON numbers (parsed exactly: Clinger's fast path, else strtod in
 * the C locale, both correctly rounded), sizes two integers, counts a string. Anything else,
 * a polygon, a missing field, a BOM, a non-ASCII byte, an escape other than \\ \/ \" in a
 * counts string, a number beyond double or int64, invalid JSON, is not read here: scan()
 * returns None and the caller decodes the file the general way, which converts what is legal
 * and names the file, the record and the field of what is not. So this module never decides
 * what is an error; it only makes the common case fast.
 *
 * scan(path, boxes, masks[, cancel]) -> None or a tuple
 *   (n, image_id, category_id, score, bbox, size, counts_end, counts)
 * of read-only buffers (Block: native-endian int64 / float64 arrays, no copy, to be read with
 * numpy.frombuffer): image_id, category_id (int64, n), score (float64, n), bbox (float64, 4n,
 * XYWH; None when not `boxes` or when no record has one), size (int64, 2n, [height, width]),
 * counts_end (int64, n, end offset of each record's counts in `counts`) and counts (the RLE
 * strings, concatenated, escapes resolved); size, counts_end and counts are None when not
 * `masks`. With `boxes`, either every record has a bbox or none does (else None); with
 * `masks`, every record has a compressed RLE (else None). Fields not asked for are checked as
 * JSON and skipped. The file is memory-mapped, and the pages already read are dropped as the
 * scan goes, so that it does not add up in resident memory. `cancel`, a writable buffer
 * (bytearray(1)) whose first byte another thread sets, stops the scan (then None).
 *
 * rle_stats(data, ends, indices) -> (total, foreground, flags): the checks and sums of
 * lvisnb.annotations.masks.rle_areas for RLE strings `indices` of such a `counts` buffer, in one pass.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__APPLE__)
#include <xlocale.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOT_SIMPLE (-1) /* fall back to the general decoder */
#define NO_MEMORY (-2)
#define MAX_DEPTH 64
#define MAX_NUMBER_CHARS 64 /* longer numbers (beyond 17 significant digits) are not simple */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_grow(Buf *b, size_t n) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + n) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) return NO_MEMORY;
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, size_t n) {
    if (!n) return 0;
    if (b->len + n > b->cap && buf_grow(b, n)) return NO_MEMORY;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

typedef struct {
    const unsigned char *p, *end, *released; /* released: the mapped pages before it are dropped */
    int boxes, masks;
    volatile const unsigned char *cancel; /* set to non-zero by another thread: stop */
    Py_ssize_t n, with_bbox;
    Buf image_id, category_id, score, bbox, size, counts_end, counts;
    locale_t c_locale;
} Scan;

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline void skip_ws(Scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static inline int expect(Scan *s, unsigned char c) {
    skip_ws(s);
    if (s->p >= s->end || *s->p != c) return NOT_SIMPLE;
    s->p++;
    return 0;
}

/* A JSON number at s->p (after white space; RFC 8259 grammar), in one pass: with `want_int`
 * an integer token within int64 into *integer_out, else the double nearest to it into
 * *double_out: exact for at most 15 significant digits times a power of ten up to 1e22
 * (Clinger 1990: both factors are exact doubles, so one correctly rounded operation), else
 * strtod in the C locale (glibc's is correctly rounded). Non-finite results are not simple.
 * With neither output, the token is only checked. */
static int read_number(Scan *s, int want_int, int64_t *integer_out, double *double_out) {
    skip_ws(s);
    const unsigned char *p = s->p, *end = s->end, *start = p;
    int negative = 0, inexact = 0, integer = 1;
    int64_t digits = 0, exponent = 0; /* no overflow whatever the length */
    uint64_t mantissa = 0;
    if (p < end && *p == '-') negative = 1, p++;
    if (p >= end) return NOT_SIMPLE;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        do {
            if (digits < 19) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            else inexact = 1, exponent++;
            digits++, p++;
        } while (p < end && (unsigned)(*p - '0') < 10);
    } else {
        return NOT_SIMPLE;
    }
    if (p < end && *p == '.') {
        integer = 0, p++;
        if (!(p < end && (unsigned)(*p - '0') < 10)) return NOT_SIMPLE;
        do {
            if (!mantissa && *p == '0') exponent--;  /* leading zeros are not significant */
            else if (digits < 19) mantissa = mantissa * 10 + (uint64_t)(*p - '0'), digits++, exponent--;
            else inexact = 1, digits++;
            p++;
        } while (p < end && (unsigned)(*p - '0') < 10);
    }
    if (p - start > MAX_NUMBER_CHARS && (want_int || double_out)) return NOT_SIMPLE;
    if (p < end && (*p == 'e' || *p == 'E')) {
        int exponent_negative = 0, value = 0;
        integer = 0, p++;
        if (p < end && (*p == '+' || *p == '-')) exponent_negative = *p++ == '-';
        if (!(p < end && (unsigned)(*p - '0') < 10)) return NOT_SIMPLE;
        do {
            if (value < 100000) value = value * 10 + (*p - '0');
            p++;
        } while (p < end && (unsigned)(*p - '0') < 10);
        exponent += exponent_negative ? -value : value;
    }
    s->p = p;
    if (want_int) {
        if (!integer || inexact) return NOT_SIMPLE;
        if (negative ? mantissa > (uint64_t)INT64_MAX + 1 : mantissa > (uint64_t)INT64_MAX)
            return NOT_SIMPLE;
        *integer_out = negative ? (int64_t)(0 - mantissa) : (int64_t)mantissa;
        return 0;
    }
    if (!double_out) return 0;
    if (integer && !mantissa) { /* "-0" as an integer is 0, as Python's float(int) gives */
        *double_out = 0.0;
        return 0;
    }
    double value;
#if FLT_EVAL_METHOD == 0
    if (!inexact && digits <= 15 && exponent >= -22 && exponent <= 22) {
        value = (double)mantissa;
        value = exponent < 0 ? value / POW10[-exponent] : value * POW10[exponent];  /* exact */
        *double_out = negative ? -value : value;
        return 0;
    }
#endif
    char text[MAX_NUMBER_CHARS + 1], *text_end;
    size_t len = (size_t)(p - start);
    if (len > MAX_NUMBER_CHARS) return NOT_SIMPLE;
    memcpy(text, start, len);
    text[len] = 0;
    value = strtod_l(text, &text_end, s->c_locale);
    if (text_end != text + len || !isfinite(value)) return NOT_SIMPLE;
    *double_out = value;
    return 0;
}

static inline int read_int64(Scan *s, int64_t *out) { return read_number(s, 1, out, NULL); }

static inline int read_double(Scan *s, double *out) { return read_number(s, 0, NULL, out); }

/* The first byte at or after p that is '"', '\\', a control or a non-ASCII byte (16 at a time
 * with SSE2: as signed bytes, both of the last two are below 0x20), or end. */
static inline const unsigned char *string_stop(const unsigned char *p, const unsigned char *end) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                   _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(hit);
        if (mask) return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) p++;
    return p;
}

/* Bytes in the well-formed UTF-8 sequence of a non-ASCII character at p (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    size_t n;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
    else return 0;
    if ((size_t)(end - p) < n || p[1] < low || p[1] > high) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

static int read_string(Scan *s, Buf *out, int any_escape) {
    if (s->p >= s->end || *s->p != '"') return NOT_SIMPLE;
    const unsigned char *p = ++s->p, *run = p;
    for (;;) {
        p = string_stop(p, s->end);
        if (p >= s->end) return NOT_SIMPLE;
        unsigned char c = *p;
        if (c == '"') break;
        if (c >= 0x80 && any_escape) { /* UTF-8, only in strings that are skipped */
            size_t n = utf8_length(p, s->end);
            if (!n) return NOT_SIMPLE;
            p += n;
            continue;
        }
        if (c != '\\') return NOT_SIMPLE; /* a control byte, or non-ASCII in a value read */
        if (out && buf_put(out, run, (size_t)(p - run))) return NO_MEMORY;
        if (p + 1 >= s->end) return NOT_SIMPLE;
        unsigned char e = p[1];
        if (e == '\\' || e == '/' || e == '"') {
            if (out && buf_put(out, &e, 1)) return NO_MEMORY;
            p += 2;
        } else if (any_escape && strchr("bfnrt", e) && e) {
            p += 2;
        } else if (any_escape && e == 'u') { /* a surrogate (pair or not) is not simple */
            if (s->end - p < 6) return NOT_SIMPLE;
            for (int i = 2; i < 6; i++)
                if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NOT_SIMPLE;
            if ((p[2] == 'd' || p[2] == 'D') && strchr("89abcdefABCDEF", p[3])) return NOT_SIMPLE;
            p += 6;
        } else {
            return NOT_SIMPLE;
        }
        run = p;
    }
    if (out && buf_put(out, run, (size_t)(p - run))) return NO_MEMORY;
    s->p = p + 1;
    return 0;
}

/* After a member or element: 1 when `close` ends the container (consumed), 0 after a comma
 * (consumed), else not simple. */
static inline int after_member(Scan *s, unsigned char close) {
    skip_ws(s);
    if (s->p >= s->end) return NOT_SIMPLE;
    if (*s->p == close) {
        s->p++;
        return 1;
    }
    return *s->p++ == ',' ? 0 : NOT_SIMPLE;
}

/* The '{' of an object with at least one member (an empty one is not simple). */
static inline int open_object(Scan *s) {
    int status = expect(s, '{');
    if (status) return status;
    skip_ws(s);
    return s->p < s->end && *s->p == '}' ? NOT_SIMPLE : 0;
}

static int skip_value(Scan *s, int depth);

static int skip_container(Scan *s, int depth, unsigned char close, int object) {
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        int status;
        if (object) {
            skip_ws(s);
            if ((status = read_string(s, NULL, 1)) || (status = expect(s, ':'))) return status;
        }
        if ((status = skip_value(s, depth + 1))) return status;
        if ((status = after_member(s, close))) return status < 0 ? status : 0;
    }
}

/* Check and skip any JSON value (nesting up to MAX_DEPTH). */
static int skip_value(Scan *s, int depth) {
    skip_ws(s);
    if (s->p >= s->end || depth > MAX_DEPTH) return NOT_SIMPLE;
    const unsigned char c = *s->p;
    if (c == '{') return skip_container(s, depth, '}', 1);
    if (c == '[') return skip_container(s, depth, ']', 0);
    if (c == '"') return read_string(s, NULL, 1);
    static const char *const literals[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if ((size_t)(s->end - s->p) >= n && !memcmp(s->p, literals[i], n)) {
            s->p += n;
            return 0;
        }
    }
    return read_number(s, 0, NULL, NULL); /* checked, not converted */
}

/* A key at s->p and the colon after it; `key` points into the buffer (no escapes allowed). */
static int read_key(Scan *s, const unsigned char **key, size_t *len) {
    skip_ws(s);
    const unsigned char *start = s->p + 1;
    int status = read_string(s, NULL, 0);
    if (status) return status;
    *key = start;
    *len = (size_t)(s->p - 1 - start);
    if (memchr(start, '\\', *len)) return NOT_SIMPLE;
    return expect(s, ':');
}

#define key_is(key, len, name) ((len) == sizeof(name) - 1 && !memcmp((key), (name), sizeof(name) - 1))

/* A compressed RLE {"size": [h, w], "counts": str} (other keys skipped). */
static int read_rle(Scan *s, int64_t size[2]) {
    int status, seen_size = 0, seen_counts = 0;
    if ((status = open_object(s))) return status;
    for (;;) {
        const unsigned char *key;
        size_t len;
        if ((status = read_key(s, &key, &len))) return status;
        if (key_is(key, len, "size")) {
            if (seen_size++) return NOT_SIMPLE;
            if ((status = expect(s, '[')) || (status = read_int64(s, &size[0])) ||
                (status = expect(s, ',')) || (status = read_int64(s, &size[1])) ||
                (status = expect(s, ']')))
                return status;
        } else if (key_is(key, len, "counts")) {
            if (seen_counts++) return NOT_SIMPLE;
            skip_ws(s);
            if ((status = read_string(s, &s->counts, 0))) return status;
        } else if ((status = skip_value(s, 2))) {
            return status;
        }
        if ((status = after_member(s, '}'))) break;
    }
    if (status < 0) return status;
    return seen_size && seen_counts ? 0 : NOT_SIMPLE;
}

enum { IMAGE_ID = 1, CATEGORY_ID = 2, SCORE = 4, BBOX = 8, SEGMENTATION = 16 };

static int read_record(Scan *s) {
    int64_t image_id = 0, category_id = 0, size[2] = {0, 0};
    double score = 0, bbox[4];
    int status, seen = 0;
    if ((status = open_object(s))) return status;
    for (;;) {
        const unsigned char *key;
        size_t len;
        int field = 0;
        if ((status = read_key(s, &key, &len))) return status;
        if (key_is(key, len, "image_id")) {
            field = IMAGE_ID;
            status = read_int64(s, &image_id);
        } else if (key_is(key, len, "category_id")) {
            field = CATEGORY_ID;
            status = read_int64(s, &category_id);
        } else if (key_is(key, len, "score")) {
            field = SCORE;
            status = read_double(s, &score);
        } else if (s->boxes && key_is(key, len, "bbox")) {
            field = BBOX;
            status = expect(s, '[');
            for (int i = 0; i < 4 && !status; i++)
                if (read_double(s, &bbox[i]) || expect(s, i < 3 ? ',' : ']')) status = NOT_SIMPLE;
        } else if (s->masks && key_is(key, len, "segmentation")) {
            field = SEGMENTATION;
            status = read_rle(s, size);
        } else {
            status = skip_value(s, 1);
        }
        if (status) return status;
        if (seen & field) return NOT_SIMPLE; /* a duplicate key */
        seen |= field;
        if ((status = after_member(s, '}'))) break;
    }
    if (status < 0) return status;
    int required = IMAGE_ID | CATEGORY_ID | SCORE | (s->masks ? SEGMENTATION : 0);
    if ((seen & required) != required) return NOT_SIMPLE;
    if (s->n && (seen & BBOX) != (s->with_bbox ? BBOX : 0)) return NOT_SIMPLE; /* some only */
    if ((buf_put(&s->image_id, &image_id, 8)) || buf_put(&s->category_id, &category_id, 8) ||
        buf_put(&s->score, &score, 8))
        return NO_MEMORY;
    if (seen & BBOX) {
        if (buf_put(&s->bbox, bbox, sizeof bbox)) return NO_MEMORY;
        s->with_bbox++;
    }
    if (s->masks) {
        int64_t end = (int64_t)s->counts.len;
        if (buf_put(&s->size, size, sizeof size) || buf_put(&s->counts_end, &end, 8)) return NO_MEMORY;
    }
    s->n++;
    return 0;
}

/* Drop the mapped pages well behind the cursor (every value there has been copied out), so
 * that the file's pages do not add up in the process's resident memory; the page cache keeps
 * them. */
static void release_behind(Scan *s) {
#if defined(MADV_DONTNEED)
    const size_t step = (size_t)1 << 24, page = (size_t)sysconf(_SC_PAGESIZE);
    if ((size_t)(s->p - s->released) < 2 * step) return;
    const unsigned char *until = s->p - step;
    until -= (uintptr_t)until % page;
    madvise((void *)s->released, (size_t)(until - s->released), MADV_DONTNEED);
    s->released = until;
#else
    (void)s;
#endif
}

static int read_file(Scan *s) {
    int status;
    if ((status = expect(s, '['))) return status;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') return NOT_SIMPLE; /* no records: said by the caller */
    for (;;) {
        if ((status = read_record(s))) return status;
        if (s->cancel && *s->cancel) return NOT_SIMPLE;
        release_behind(s);
        if ((status = after_member(s, ']'))) break;
    }
    if (status < 0) return status;
    skip_ws(s);
    if (s->p != s->end) return NOT_SIMPLE;
    return 0;
}

/* ------------------------------------------------------------------ buffers handed to Python */

/* A malloc'ed block handed to Python without a copy: it exports the buffer protocol
 * (read-only bytes) and frees the block with the last reference (numpy.frombuffer and
 * memoryview keep one). */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t len;
} Block;

static void block_dealloc(Block *self) {
    free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int block_getbuffer(Block *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data ? self->data : (char *)"",
                             self->len, 1, flags);
}

static Py_ssize_t block_length(Block *self) { return self->len; }

static PyBufferProcs block_as_buffer = {(getbufferproc)block_getbuffer, NULL};
static PySequenceMethods block_as_sequence = {.sq_length = (lenfunc)block_length};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lvisnb.evaluation._results_json.Block",
    .tp_basicsize = sizeof(Block),
    .tp_dealloc = (destructor)block_dealloc,
    .tp_as_buffer = &block_as_buffer,
    .tp_as_sequence = &block_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only bytes of one column (the buffer protocol; no copy).",
};

/* The Buf as a Block (the Block takes the memory: the Buf is emptied), or None. */
static PyObject *as_block(Buf *b, int wanted) {
    if (!wanted) Py_RETURN_NONE;
    Block *block = PyObject_New(Block, &BlockType);
    if (!block) return NULL;
    block->data = b->data;
    block->len = (Py_ssize_t)b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return (PyObject *)block;
}

/* ------------------------------------------------------------------ scan */

/* Map the file and read it (no GIL needed). */
static int scan_file(const char *path, Scan *s) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NOT_SIMPLE; /* the general reader says why */
    struct stat info;
    int status = NOT_SIMPLE;
    if (fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0) {
        size_t size = (size_t)info.st_size;
        void *data = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data != MAP_FAILED) {
#if defined(MADV_SEQUENTIAL)
            madvise(data, size, MADV_SEQUENTIAL);
#endif
            s->p = s->released = data;
            s->end = s->p + size;
            status = read_file(s);
            munmap(data, size);
        }
    }
    close(fd);
    return status;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *path;
    int boxes, masks;
    Py_buffer cancel = {0};
    if (!PyArg_ParseTuple(args, "O&pp|w*", PyUnicode_FSConverter, &path, &boxes, &masks, &cancel))
        return NULL;
    Scan s;
    memset(&s, 0, sizeof s);
    s.boxes = boxes;
    s.masks = masks;
    s.cancel = cancel.obj && cancel.len > 0 ? cancel.buf : NULL;
    s.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    int status = NO_MEMORY;
    if (s.c_locale) {
        const char *name = PyBytes_AS_STRING(path);
        Py_BEGIN_ALLOW_THREADS
        status = scan_file(name, &s);
        Py_END_ALLOW_THREADS
        freelocale(s.c_locale);
    }
    Py_DECREF(path);
    if (cancel.obj) PyBuffer_Release(&cancel);
    PyObject *result = NULL;
    if (status == NO_MEMORY) {
        PyErr_NoMemory();
    } else if (status == NOT_SIMPLE) {
        result = Py_NewRef(Py_None);
    } else {
        result = Py_BuildValue(
            "(nNNNNNNN)", s.n, as_block(&s.image_id, 1), as_block(&s.category_id, 1),
            as_block(&s.score, 1), as_block(&s.bbox, boxes && s.with_bbox),
            as_block(&s.size, masks), as_block(&s.counts_end, masks), as_block(&s.counts, masks));
    }
    Buf *bufs[] = {&s.image_id, &s.category_id, &s.score, &s.bbox, &s.size, &s.counts_end, &s.counts};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]->data);
    return result;
}

/* ------------------------------------------------------------------ compressed RLE strings */

/* One compressed COCO RLE string (pycocotools' rleFrString coding: values of 5-bit groups,
 * least significant first, as characters 48 + g; 0x20 = more groups follow, 0x10 in the
 * last group = negative; runs c_m = x_m, plus c_{m-2} when m > 2), checked as
 * lvisnb.annotations.masks.rle_totals does: every character in '0'..'o', no value cut off by the end of
 * the string, at most MAX_CHARS characters per value. Sets *total (sum of the runs),
 * *foreground (sum of the odd runs: pycocotools' area) and *flags (1: well-formed,
 * 2: a negative run). */
#define MAX_CHARS 7 /* lvisnb.annotations.masks.RLE_MAX_CHARS_PER_COUNT */
static void rle_string_stats(const unsigned char *p, const unsigned char *end, int64_t *total,
                             int64_t *foreground, unsigned char *flags) {
    int64_t runs[2] = {0, 0}; /* c_{m-2} for m even / odd */
    int64_t sum = 0, fg = 0;
    unsigned char ok = 1, negative = 0;
    for (int64_t m = 0; p < end; m++) {
        int64_t x = 0;
        int k = 0, more = 1;
        while (more) {
            if (p >= end) {
                ok = 0; /* cut off inside a value */
                break;
            }
            int g = (int)*p++ - 48;
            if (g < 0 || g > 63 || k >= MAX_CHARS) {
                ok = 0;
                g = 0;
            }
            x |= (int64_t)(g & 0x1F) << (5 * k);
            more = g & 0x20;
            k++;
            if (!more && (g & 0x10)) x -= (int64_t)1 << (5 * k);
        }
        if (!ok) break;
        int64_t run = m > 2 ? x + runs[m & 1] : x;
        runs[m & 1] = run;
        if (run < 0) negative = 1;
        sum += run;
        if (m & 1) fg += run;
    }
    *total = sum;
    *foreground = fg;
    *flags = (unsigned char)(ok | (negative << 1));
}

/* rle_stats(data, ends, indices) -> (total, foreground, flags): of the RLE strings
 * `indices` (int64) of `data` (strings concatenated, string i ending at ends[i], int64),
 * as bytes: int64, int64, uint8 arrays (see rle_string_stats). */
static PyObject *rle_stats(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, ends, indices;
    if (!PyArg_ParseTuple(args, "y*y*y*", &data, &ends, &indices)) return NULL;
    Py_ssize_t n = indices.len / 8, strings = ends.len / 8;
    PyObject *total = PyBytes_FromStringAndSize(NULL, n * 8);
    PyObject *foreground = PyBytes_FromStringAndSize(NULL, n * 8);
    PyObject *flags = PyBytes_FromStringAndSize(NULL, n);
    int bad_index = 0;
    if (total && foreground && flags) {
        const int64_t *end_of = ends.buf, *index = indices.buf;
        const unsigned char *chars = data.buf;
        int64_t *t = (int64_t *)PyBytes_AS_STRING(total), *f = (int64_t *)PyBytes_AS_STRING(foreground);
        unsigned char *fl = (unsigned char *)PyBytes_AS_STRING(flags);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n && !bad_index; i++) {
            int64_t j = index[i];
            if (j < 0 || j >= strings) {
                bad_index = 1;
                break;
            }
            int64_t start = j ? end_of[j - 1] : 0;
            if (start < 0 || start > end_of[j] || end_of[j] > data.len) {
                bad_index = 1;
                break;
            }
            rle_string_stats(chars + start, chars + end_of[j], &t[i], &f[i], &fl[i]);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&indices);
    if (bad_index) PyErr_SetString(PyExc_IndexError, "rle_stats: an index or offset out of range");
    if (!total || !foreground || !flags || bad_index) {
        Py_XDECREF(total);
        Py_XDECREF(foreground);
        Py_XDECREF(flags);
        return NULL;
    }
    return Py_BuildValue("(NNN)", total, foreground, flags);
}

static PyObject *SIZE_KEY, *COUNTS_KEY; /* interned "size" and "counts" */

/* {"size": [height, width], "counts": counts} (takes the reference to counts), or NULL. */
static PyObject *rle_dict(int64_t height, int64_t width, PyObject *counts) {
    PyObject *dict = PyDict_New(), *size = PyList_New(2);
    PyObject *h = PyLong_FromLongLong(height), *w = PyLong_FromLongLong(width);
    if (dict && size && h && w) {
        PyList_SET_ITEM(size, 0, h);
        PyList_SET_ITEM(size, 1, w);
        h = w = NULL;
        if (!PyDict_SetItem(dict, SIZE_KEY, size) && !PyDict_SetItem(dict, COUNTS_KEY, counts)) {
            Py_DECREF(size);
            Py_DECREF(counts);
            return dict;
        }
    }
    Py_XDECREF(dict);
    Py_XDECREF(size);
    Py_XDECREF(h);
    Py_XDECREF(w);
    Py_DECREF(counts);
    return NULL;
}

/* rle_objects(data, ends, sizes, indices) -> list: for RLE strings `indices` (int64) of `data`
 * (string i ending at ends[i], int64), their counts as str, or with `sizes` (int64 [h, w]
 * pairs, not None) dicts {"size": [h, w], "counts": str}, as pycocotools-style APIs take
 * them. Raises IndexError for an index or offset out of range, UnicodeDecodeError for a
 * non-ASCII byte. */
static PyObject *rle_objects(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, ends, indices, sizes = {0};
    PyObject *sizes_object, *out = NULL;
    if (!PyArg_ParseTuple(args, "y*y*Oy*", &data, &ends, &sizes_object, &indices)) return NULL;
    int with_size = sizes_object != Py_None;
    if (with_size && PyObject_GetBuffer(sizes_object, &sizes, PyBUF_SIMPLE) < 0) goto done;
    Py_ssize_t n = indices.len / 8, strings = ends.len / 8;
    if (with_size && sizes.len / 16 < strings) {
        PyErr_SetString(PyExc_IndexError, "rle_objects: fewer sizes than strings");
        goto done;
    }
    const int64_t *end_of = ends.buf, *index = indices.buf, *size = with_size ? sizes.buf : NULL;
    const char *chars = data.buf;
    if (!(out = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t j = index[i], start = j > 0 && j < strings ? end_of[j - 1] : 0;
        if (j < 0 || j >= strings || start < 0 || start > end_of[j] || end_of[j] > data.len) {
            PyErr_SetString(PyExc_IndexError, "rle_objects: an index or offset out of range");
            Py_CLEAR(out);
            goto done;
        }
        PyObject *item = PyUnicode_DecodeASCII(chars + start, end_of[j] - start, "strict");
        if (item && with_size) item = rle_dict(size[2 * j], size[2 * j + 1], item);
        if (!item) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, item);
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&indices);
    if (with_size && sizes.obj) PyBuffer_Release(&sizes);
    return out;
}

/* rle_subset(data, ends, indices) -> (data, ends): the same N strings with all but `indices`
 * (int64, strictly increasing) made empty, in a new buffer (a Block) holding only those. */
static PyObject *rle_subset(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, ends, indices;
    if (!PyArg_ParseTuple(args, "y*y*y*", &data, &ends, &indices)) return NULL;
    Py_ssize_t n = ends.len / 8, kept = indices.len / 8;
    const int64_t *end_of = ends.buf, *index = indices.buf;
    PyObject *new_ends = PyBytes_FromStringAndSize(NULL, n * 8), *result = NULL;
    Buf out = {0};
    int status = new_ends ? 0 : NO_MEMORY;
    if (!status) {
        int64_t *new_end = (int64_t *)PyBytes_AS_STRING(new_ends);
        Py_ssize_t k = 0;
        for (Py_ssize_t i = 0; i < n && !status; i++) {
            if (k < kept && index[k] == i) {
                int64_t start = i ? end_of[i - 1] : 0;
                if (start < 0 || start > end_of[i] || end_of[i] > data.len) status = NOT_SIMPLE;
                else status = buf_put(&out, (const char *)data.buf + start, (size_t)(end_of[i] - start));
                k++;
            }
            new_end[i] = (int64_t)out.len;
        }
        if (!status && k != kept) status = NOT_SIMPLE; /* not increasing, or out of range */
    }
    if (status == NOT_SIMPLE) PyErr_SetString(PyExc_IndexError, "rle_subset: bad indices or offsets");
    else if (status == NO_MEMORY) PyErr_NoMemory();
    else result = Py_BuildValue("(NN)", as_block(&out, 1), new_ends), new_ends = NULL;
    Py_XDECREF(new_ends);
    free(out.data);
    PyBuffer_Release(&data);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&indices);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(path, boxes, masks): the columns of a simple LVIS results file, or None "
     "(see the module's source for the layout)."},
    {"rle_stats", rle_stats, METH_VARARGS,
     "rle_stats(data, ends, indices): (total, foreground, flags) of compressed RLE strings."},
    {"rle_objects", rle_objects, METH_VARARGS,
     "rle_objects(data, ends, sizes, indices): RLE strings as str, or dicts with sizes."},
    {"rle_subset", rle_subset, METH_VARARGS,
     "rle_subset(data, ends, indices): the strings `indices` only, the others made empty."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_results_json",
    .m_doc = "A strict column-wise reader of LVIS results files (see lvisnb.evaluation.result_columns).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__results_json(void) {
    if (PyType_Ready(&BlockType) < 0) return NULL;
    if (!(SIZE_KEY = PyUnicode_InternFromString("size"))) return NULL;
    if (!(COUNTS_KEY = PyUnicode_InternFromString("counts"))) return NULL;
    return PyModule_Create(&module);
}
