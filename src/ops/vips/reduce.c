/* Lanczos3 reduction of 8-bit images, vectorised: a horizontal and a vertical pass.
 *
 * Why: in libvips up to 8.14 the horizontal reduce is scalar C with a run-time band loop; it
 * took 14.4 ms of a 1000×750 RGB → 800 px reduce on one core here, the vertical one (orc)
 * 2.7 ms: a quarter of a whole JPEG 12 MP → 800 px request. libvips 8.15 vectorised it with
 * Highway; Debian 12 ships 8.14. The vertical pass is libvips' orc code, compiled again for
 * every image (under the shim's orc lock) and with its weights quantised to 1/32 pixel and
 * 12 bits; doing it here too takes orc off the resize path.
 *
 * How: each output pixel's weights are computed exactly once per operation as 16-bit fixed
 * point summing to 1 << SHIFT, with the taps that fall outside the image folded onto the edge
 * pixel (libvips' edge extension).
 * - Horizontal: a row is first split into one 16-bit plane per band; then every output
 *   sample is a dot product of contiguous 16-bit values with contiguous weights, eight at a
 *   time (SSE2's pmaddwd, part of every x86-64), whatever the band count. 3.2 to 3.4 times
 *   faster than libvips 8.14's on 1.25× to 4× reductions of RGB and RGBA here; libvips 8.16's
 *   (Highway) is level with it.
 * - Vertical: sixteen samples of an output row at a time, two input rows per pmaddwd (their
 *   bytes interleaved, against the two rows' weights).
 * Where the CPU has AVX2 (checked once at run time) both passes do twice the samples per
 * instruction: sixteen taps per multiply, eight output samples per horizontal sum, 32 samples
 * of a row per vertical step. Integer sums are exact, so every path gives the same bytes.
 * Other architectures use the same loops in C. One path on every libvips gives the same bytes
 * everywhere (docs/performance.md). Rounding is to nearest, results clamped to 0..255
 * (Lanczos overshoots at edges).
 */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <vips/vips.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

#include "shim.h"

/* Weights in 1/2^14: a tap's rounding error is at most 2^-15, so even the 96 taps of a ×16
 * reduction (the most imgedge_resize gives this) are off by under 0.75 of a level at worst,
 * and the errors mostly cancel (the tests hold every pass to one level of an exact Lanczos3);
 * and 2^14 · 1.2 (the largest weight, an edge pixel with folded lobes) fits in an int16. */
#define SHIFT 14
/* Taps are processed in groups of this many: one 128-bit vector of int16. */
#define GROUP 8

/* The weights of every output pixel (or row) of one pass. */
typedef struct {
	int taps;        /* weights per output, a multiple of GROUP, zero-padded */
	int *start;      /* first input column (row) of each output */
	int *count;      /* weights of each output that are not padding: start + count <= size */
	int16_t *weight; /* taps weights per output */
} Weights;

/* Both passes: the same arguments, weights made by the same code. */
typedef struct _ImgedgeReduce {
	VipsOperation parent_instance;
	VipsImage *in;
	VipsImage *out;
	double shrink;

	Weights w;
	gboolean avx2; /* this operation's passes use the AVX2 loops */
} ImgedgeReduce;

typedef VipsOperationClass ImgedgeReduceClass;

G_DEFINE_ABSTRACT_TYPE(ImgedgeReduce, imgedge_reduce, VIPS_TYPE_OPERATION);

/* 2 while operations may use AVX2 (the CPU has it), 1 otherwise; -1 until first asked. */
static int simd_level = -1;

static int
simd_available(void)
{
#ifdef HAVE_AVX2_PATH
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") ? 2 : 1;
#else
	return 1;
#endif
}

int
imgedge_reduce_simd(int level)
{
	int available = simd_available();

	g_atomic_int_set(&simd_level, level < 0 || level > available ? available : level);
	return g_atomic_int_get(&simd_level);
}

static gboolean
use_avx2(void)
{
	int level = g_atomic_int_get(&simd_level);

	if (level < 0)
		level = imgedge_reduce_simd(-1);
	return level >= 2;
}

/* Lanczos3 at t0, t0 + d, … (n values) into v. sin(πt) and sin(πt/3) advance by rotation
 * through the angle of one step: two sin() calls per tap were 1 % of a 2 MP → 300 request.
 * After the few dozen steps of a kernel the error is ~1e-14, far below the 2^-14 weights. */
static void
lanczos3_run(double t0, double d, int n, double *v)
{
	double a = M_PI * t0, step = M_PI * d;
	double s1 = sin(a), c1 = cos(a), s3 = sin(a / 3.0), c3 = cos(a / 3.0);
	double ds1 = sin(step), dc1 = cos(step), ds3 = sin(step / 3.0), dc3 = cos(step / 3.0);

	for (int k = 0; k < n; k++) {
		double t = t0 + k * d, pt = M_PI * t, s;

		if (fabs(t) < 1e-9)
			v[k] = 1.0;
		else if (t <= -3.0 || t >= 3.0)
			v[k] = 0.0;
		else
			v[k] = 3.0 * s1 * s3 / (pt * pt);
		s = s1 * dc1 + c1 * ds1;
		c1 = c1 * dc1 - s1 * ds1;
		s1 = s;
		s = s3 * dc3 + c3 * ds3;
		c3 = c3 * dc3 - s3 * ds3;
		s3 = s;
	}
}

/* The weights of every output of a pass from `in_size` to `out_size` pixels. Output x is
 * centred on input (x + 0.5)·shrink − 0.5 (pixel centres aligned, as libvips does since
 * 8.10), and the kernel is stretched by shrink so that it also low-pass filters. The arrays
 * belong to `owner`. */
static int
weights_make(VipsObject *owner, Weights *weights, double shrink, int in_size, int out_size)
{
	double support = 3.0 * shrink;
	/* The kernel is zero at ±support, so an output has at most ⌈2·support⌉ taps. */
	int span = (int) ceil(2.0 * support);
	int taps = (span + GROUP - 1) / GROUP * GROUP;
	double *w = g_new(double, span);
	double *kernel = g_new(double, span);

	weights->taps = taps;
	weights->start = VIPS_ARRAY(owner, out_size, int);
	weights->count = VIPS_ARRAY(owner, out_size, int);
	weights->weight = VIPS_ARRAY(owner, (size_t) out_size * taps, int16_t);
	if (!weights->start || !weights->count || !weights->weight) {
		g_free(w);
		g_free(kernel);
		return -1;
	}
	memset(weights->weight, 0, (size_t) out_size * taps * sizeof(int16_t));

	for (int x = 0; x < out_size; x++) {
		double centre = (x + 0.5) * shrink - 0.5;
		int first = (int) floor(centre - support) + 1;
		int last = (int) ceil(centre + support) - 1;
		int lo = VIPS_MAX(first, 0);
		int hi = VIPS_MIN(last, in_size - 1);
		int16_t *q = weights->weight + (size_t) x * taps;
		double sum = 0.0;
		int total = 0, biggest = 0;

		for (int i = 0; i <= hi - lo; i++)
			w[i] = 0.0;
		lanczos3_run((first - centre) / shrink, 1.0 / shrink, last - first + 1, kernel);
		for (int i = first; i <= last; i++) {
			double v = kernel[i - first];

			w[VIPS_CLIP(lo, i, hi) - lo] += v;
			sum += v;
		}
		for (int i = 0; i <= hi - lo; i++) {
			q[i] = (int16_t) lrint(w[i] / sum * (1 << SHIFT));
			total += q[i];
			if (q[i] > q[biggest])
				biggest = i;
		}
		/* The weights sum exactly to one, so flat areas stay exactly flat. */
		q[biggest] += (1 << SHIFT) - total;
		weights->start[x] = lo;
		weights->count[x] = hi - lo + 1;
	}
	g_free(w);
	g_free(kernel);
	return 0;
}

static inline VipsPel
clamp_round(int32_t sum)
{
	int32_t v = (sum + (1 << (SHIFT - 1))) >> SHIFT;

	return (VipsPel) VIPS_CLIP(0, v, 255);
}

/* ---- the horizontal pass ---------------------------------------------------------------- */

typedef struct {
	VipsRegion *ir;
	int16_t *planes; /* Bands rows of stride int16 each */
	int stride;
} ReducehSeq;

static void *
reduceh_start(VipsImage *out, void *a, void *b)
{
	VipsImage *in = (VipsImage *) a;
	ImgedgeReduce *reduce = (ImgedgeReduce *) b;
	ReducehSeq *seq = g_new0(ReducehSeq, 1);

	seq->ir = vips_region_new(in);
	seq->stride = in->Xsize + reduce->w.taps;
	seq->planes = g_new0(int16_t, (size_t) seq->stride * in->Bands);
	return seq;
}

static int
reduceh_stop(void *vseq, void *a, void *b)
{
	ReducehSeq *seq = (ReducehSeq *) vseq;

	VIPS_UNREF(seq->ir);
	g_free(seq->planes);
	g_free(seq);
	return 0;
}

static inline int32_t
dot_c(const int16_t *p, const int16_t *w, int taps)
{
	int32_t sum = 0;

	for (int t = 0; t < taps; t++)
		sum += p[t] * w[t];
	return sum;
}

#ifdef __SSE2__
static inline __m128i
dot_sse2(const int16_t *p, const int16_t *w, int taps)
{
	__m128i acc = _mm_madd_epi16(_mm_loadu_si128((const __m128i *) p),
		_mm_loadu_si128((const __m128i *) w));

	for (int t = GROUP; t < taps; t += GROUP)
		acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_loadu_si128((const __m128i *) (p + t)),
			_mm_loadu_si128((const __m128i *) (w + t))));
	return acc;
}
#endif

/* Walking an output row of the horizontal pass: sample k is band b = k % bands of output
 * pixel x = left + k / bands; these are its input samples and weights, and the step to k + 1. */
#define SAMPLE_P() (planes + (size_t) b * stride + (weights->start[x] - first))
#define SAMPLE_W() (weights->weight + (size_t) x * taps)
#define NEXT() \
	do { \
		if (++b == bands) { \
			b = 0; \
			x++; \
		} \
	} while (0)

/* One output row, from sample k on: samples n = width·bands. */
static inline __attribute__((always_inline)) void
reduceh_row(const Weights *weights, const int16_t *planes, int stride, int first, int bands,
	int left, int width, VipsPel *q, int taps, int k)
{
	int n = width * bands;
	int x = left + k / bands, b = k % bands;

#ifdef __SSE2__
	const __m128i half = _mm_set1_epi32(1 << (SHIFT - 1));

	for (; k + 4 <= n; k += 4) {
		__m128i s[4];

		for (int i = 0; i < 4; i++) {
			s[i] = dot_sse2(SAMPLE_P(), SAMPLE_W(), taps);
			NEXT();
		}
		/* Four horizontal sums at once: a 4×4 transpose by unpacks, then adds. */
		__m128i t0 = _mm_add_epi32(_mm_unpacklo_epi32(s[0], s[1]), _mm_unpackhi_epi32(s[0], s[1]));
		__m128i t1 = _mm_add_epi32(_mm_unpacklo_epi32(s[2], s[3]), _mm_unpackhi_epi32(s[2], s[3]));
		__m128i sum = _mm_add_epi32(_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1));
		__m128i v = _mm_srai_epi32(_mm_add_epi32(sum, half), SHIFT);

		v = _mm_packs_epi32(v, v);
		v = _mm_packus_epi16(v, v);
		uint32_t four = (uint32_t) _mm_cvtsi128_si32(v);
		memcpy(q + k, &four, 4);
	}
#endif
	for (; k < n; k++) {
		q[k] = clamp_round(dot_c(SAMPLE_P(), SAMPLE_W(), taps));
		NEXT();
	}
}

/* A row of pixels into one 16-bit plane per band, each followed by `taps` zeros: the zero
 * weights that pad a pixel's taps may read past the last column. */
static inline __attribute__((always_inline)) void
split(const VipsPel *p, int16_t *planes, int stride, int width, int bands, int taps)
{
	for (int i = 0; i < width; i++)
		for (int b = 0; b < bands; b++)
			planes[(size_t) b * stride + i] = p[i * bands + b];
	for (int b = 0; b < bands; b++)
		memset(planes + (size_t) b * stride + width, 0, taps * sizeof(int16_t));
}

#ifdef HAVE_AVX2_PATH
/* Sixteen taps per multiply; taps is a multiple of eight, so at most one half-width step. */
static inline __attribute__((always_inline, target("avx2"))) __m256i
dot_avx2(const int16_t *p, const int16_t *w, int taps)
{
	__m256i acc = _mm256_setzero_si256();
	int t = 0;

	for (; t + 16 <= taps; t += 16)
		acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) (p + t)),
			_mm256_loadu_si256((const __m256i *) (w + t))));
	if (t < taps)
		acc = _mm256_add_epi32(acc, _mm256_inserti128_si256(_mm256_setzero_si256(),
			_mm_madd_epi16(_mm_loadu_si128((const __m128i *) (p + t)),
				_mm_loadu_si128((const __m128i *) (w + t))), 0));
	return acc;
}

/* reduceh_row with eight output samples per step (their eight partial-sum vectors added up by
 * a tree of horizontal adds, then the two 128-bit halves of the result); reduceh_row does the
 * rest. */
static inline __attribute__((always_inline, target("avx2"))) void
reduceh_row_avx2_taps(const Weights *weights, const int16_t *planes, int stride, int first,
	int bands, int left, int width, VipsPel *q, int taps)
{
	int n = width * bands;
	int k = 0, x = left, b = 0;
	const __m256i half = _mm256_set1_epi32(1 << (SHIFT - 1));

	for (; k + 8 <= n; k += 8) {
		__m256i s[8];

		for (int i = 0; i < 8; i++) {
			s[i] = dot_avx2(SAMPLE_P(), SAMPLE_W(), taps);
			NEXT();
		}
		__m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
		__m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
		__m256i sum = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
			_mm256_permute2x128_si256(h0, h1, 0x31));
		__m256i v = _mm256_srai_epi32(_mm256_add_epi32(sum, half), SHIFT);
		__m128i v16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
		uint64_t eight = (uint64_t) _mm_cvtsi128_si64(_mm_packus_epi16(v16, v16));

		memcpy(q + k, &eight, 8);
	}
	reduceh_row(weights, planes, stride, first, bands, left, width, q, taps, k);
}

/* split() for RGB, RGBA and one band, sixteen (RGBA: eight) pixels per step: pshufb gathers
 * each band's bytes, which are then widened to 16 bits. */
static inline __attribute__((always_inline, target("avx2"))) void
split_avx2(const VipsPel *p, int16_t *planes, int stride, int width, int bands, int taps)
{
	int i = 0;

	if (bands == 3) {
		/* Band b of pixel k is byte 3k + b: from the first 16 bytes, the second and the third. */
		static const int8_t take[3][3][16] = {
			{ { 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1 },
				{ -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1 },
				{ -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13 } },
			{ { 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1 },
				{ -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1 },
				{ -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14 } },
			{ { 2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1 },
				{ -1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1 },
				{ -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15 } },
		};

		for (; i + 16 <= width; i += 16) {
			const __m128i *in = (const __m128i *) (p + 3 * i);
			__m128i a = _mm_loadu_si128(in), b = _mm_loadu_si128(in + 1), c = _mm_loadu_si128(in + 2);

			for (int band = 0; band < 3; band++) {
				__m128i v = _mm_or_si128(
					_mm_or_si128(_mm_shuffle_epi8(a, _mm_loadu_si128((const __m128i *) take[band][0])),
						_mm_shuffle_epi8(b, _mm_loadu_si128((const __m128i *) take[band][1]))),
					_mm_shuffle_epi8(c, _mm_loadu_si128((const __m128i *) take[band][2])));

				_mm256_storeu_si256((__m256i *) (planes + (size_t) band * stride + i),
					_mm256_cvtepu8_epi16(v));
			}
		}
	}
	else if (bands == 4) {
		/* Within each 128-bit half: R0-3 G0-3 B0-3 A0-3; then the halves' dwords interleaved,
		 * so that each 64-bit quarter is one band's eight bytes. */
		const __m256i group = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11,
			15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
		const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);

		for (; i + 8 <= width; i += 8) {
			__m256i v = _mm256_permutevar8x32_epi32(
				_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) (p + 4 * i)), group), order);
			__m128i rg = _mm256_castsi256_si128(v), ba = _mm256_extracti128_si256(v, 1);

			_mm_storeu_si128((__m128i *) (planes + i), _mm_cvtepu8_epi16(rg));
			_mm_storeu_si128((__m128i *) (planes + (size_t) stride + i),
				_mm_cvtepu8_epi16(_mm_srli_si128(rg, 8)));
			_mm_storeu_si128((__m128i *) (planes + (size_t) 2 * stride + i), _mm_cvtepu8_epi16(ba));
			_mm_storeu_si128((__m128i *) (planes + (size_t) 3 * stride + i),
				_mm_cvtepu8_epi16(_mm_srli_si128(ba, 8)));
		}
	}
	else if (bands == 1) {
		for (; i + 16 <= width; i += 16)
			_mm256_storeu_si256((__m256i *) (planes + i),
				_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *) (p + i))));
	}
	split(p + (size_t) i * bands, planes + i, stride, width - i, bands, taps);
}

/* One row of the horizontal pass: split, then the dot products. */
static __attribute__((target("avx2"))) void
reduceh_row_avx2(const Weights *weights, const VipsPel *p, int16_t *planes, int stride,
	int first, int need, int bands, int left, int width, VipsPel *q)
{
	switch (bands) {
	case 1:
		split_avx2(p, planes, stride, need, 1, weights->taps);
		break;
	case 3:
		split_avx2(p, planes, stride, need, 3, weights->taps);
		break;
	case 4:
		split_avx2(p, planes, stride, need, 4, weights->taps);
		break;
	default:
		split_avx2(p, planes, stride, need, bands, weights->taps);
		break;
	}
	switch (weights->taps) {
	case 8:
		reduceh_row_avx2_taps(weights, planes, stride, first, bands, left, width, q, 8);
		break;
	case 16:
		reduceh_row_avx2_taps(weights, planes, stride, first, bands, left, width, q, 16);
		break;
	case 24:
		reduceh_row_avx2_taps(weights, planes, stride, first, bands, left, width, q, 24);
		break;
	default:
		reduceh_row_avx2_taps(weights, planes, stride, first, bands, left, width, q,
			weights->taps);
		break;
	}
}
#endif

#undef SAMPLE_P
#undef SAMPLE_W
#undef NEXT

static int
reduceh_gen(VipsRegion *out_region, void *vseq, void *a, void *b, gboolean *stop)
{
	ReducehSeq *seq = (ReducehSeq *) vseq;
	const Weights *weights = &((ImgedgeReduce *) b)->w;
	VipsImage *in = (VipsImage *) a;
	VipsRect *r = &out_region->valid;
	int bands = in->Bands;
	int first = weights->start[r->left];
	int end = first;
	VipsRect need;

	for (int x = r->left; x < VIPS_RECT_RIGHT(r); x++)
		end = VIPS_MAX(end, weights->start[x] + weights->count[x]);
	need.left = first;
	need.top = r->top;
	need.width = end - first;
	need.height = r->height;
	if (vips_region_prepare(seq->ir, &need))
		return -1;

	for (int y = 0; y < r->height; y++) {
		const VipsPel *p = VIPS_REGION_ADDR(seq->ir, first, r->top + y);
		VipsPel *q = VIPS_REGION_ADDR(out_region, r->left, r->top + y);

#ifdef HAVE_AVX2_PATH
		if (((ImgedgeReduce *) b)->avx2) {
			reduceh_row_avx2(weights, p, seq->planes, seq->stride, first, need.width, bands,
				r->left, r->width, q);
			continue;
		}
#endif
		switch (bands) {
		case 3:
			split(p, seq->planes, seq->stride, need.width, 3, weights->taps);
			break;
		case 4:
			split(p, seq->planes, seq->stride, need.width, 4, weights->taps);
			break;
		default:
			split(p, seq->planes, seq->stride, need.width, bands, weights->taps);
			break;
		}
		/* Constant tap counts for the common reductions (up to ×1.33, ×2.67, ×4), so
		 * that the dot products unroll. */
		switch (weights->taps) {
		case 8:
			reduceh_row(weights, seq->planes, seq->stride, first, bands, r->left, r->width, q,
				8, 0);
			break;
		case 16:
			reduceh_row(weights, seq->planes, seq->stride, first, bands, r->left, r->width, q,
				16, 0);
			break;
		case 24:
			reduceh_row(weights, seq->planes, seq->stride, first, bands, r->left, r->width, q,
				24, 0);
			break;
		default:
			reduceh_row(weights, seq->planes, seq->stride, first, bands, r->left, r->width, q,
				weights->taps, 0);
			break;
		}
	}
	return 0;
}

/* ---- the vertical pass ------------------------------------------------------------------ */

typedef struct {
	VipsRegion *ir;
	const VipsPel **rows; /* the input rows of one output row */
} ReducevSeq;

static void *
reducev_start(VipsImage *out, void *a, void *b)
{
	ReducevSeq *seq = g_new0(ReducevSeq, 1);

	seq->ir = vips_region_new((VipsImage *) a);
	seq->rows = g_new0(const VipsPel *, ((ImgedgeReduce *) b)->w.taps);
	return seq;
}

static int
reducev_stop(void *vseq, void *a, void *b)
{
	ReducevSeq *seq = (ReducevSeq *) vseq;

	VIPS_UNREF(seq->ir);
	g_free(seq->rows);
	g_free(seq);
	return 0;
}

/* The vertical pass's SIMD steps at one vector width: V the vector type, P the intrinsics'
 * prefix (_mm, _mm256), S their integer suffix (si128, si256). Each step is sizeof(V) samples
 * of the row: rows t and t + 1 byte-interleaved, against (w[t], w[t + 1]) pairs. AVX2's
 * unpacks and packs stay within each 128-bit half, so at either width the samples come out in
 * order. */
#define REDUCEV_STEPS(V, P, S) \
	do { \
		const V zero = P##_setzero_##S(); \
		const V half = P##_set1_epi32(1 << (SHIFT - 1)); \
\
		for (; x + (int) sizeof(V) <= line; x += (int) sizeof(V)) { \
			V acc[4] = { zero, zero, zero, zero }; \
\
			for (int t = 0; t < n; t += 2) { \
				V a = P##_loadu_##S((const V *) (rows[t] + x)); \
				V b = t + 1 < n ? P##_loadu_##S((const V *) (rows[t + 1] + x)) : zero; \
				uint16_t w1 = t + 1 < n ? (uint16_t) w[t + 1] : 0; \
				V pair = P##_set1_epi32((int) (((uint32_t) w1 << 16) | (uint16_t) w[t])); \
				V lo = P##_unpacklo_epi8(a, b); \
				V hi = P##_unpackhi_epi8(a, b); \
\
				acc[0] = P##_add_epi32(acc[0], P##_madd_epi16(P##_unpacklo_epi8(lo, zero), pair)); \
				acc[1] = P##_add_epi32(acc[1], P##_madd_epi16(P##_unpackhi_epi8(lo, zero), pair)); \
				acc[2] = P##_add_epi32(acc[2], P##_madd_epi16(P##_unpacklo_epi8(hi, zero), pair)); \
				acc[3] = P##_add_epi32(acc[3], P##_madd_epi16(P##_unpackhi_epi8(hi, zero), pair)); \
			} \
			for (int i = 0; i < 4; i++) \
				acc[i] = P##_srai_epi32(P##_add_epi32(acc[i], half), SHIFT); \
			P##_storeu_##S((V *) (q + x), P##_packus_epi16(P##_packs_epi32(acc[0], acc[1]), \
				P##_packs_epi32(acc[2], acc[3]))); \
		} \
	} while (0)

/* One output row of `line` samples from n input rows and their weights, from sample x on. */
static void
reducev_row(const VipsPel **rows, int n, const int16_t *w, VipsPel *q, int x, int line)
{
#ifdef __SSE2__
	REDUCEV_STEPS(__m128i, _mm, si128);
#endif
	for (; x < line; x++) {
		int32_t sum = 0;

		for (int t = 0; t < n; t++)
			sum += rows[t][x] * w[t];
		q[x] = clamp_round(sum);
	}
}

#ifdef HAVE_AVX2_PATH
/* reducev_row 32 samples at a time; reducev_row does the rest. */
static __attribute__((target("avx2"))) void
reducev_row_avx2(const VipsPel **rows, int n, const int16_t *w, VipsPel *q, int line)
{
	int x = 0;

	REDUCEV_STEPS(__m256i, _mm256, si256);
	reducev_row(rows, n, w, q, x, line);
}
#endif

static int
reducev_gen(VipsRegion *out_region, void *vseq, void *a, void *b, gboolean *stop)
{
	ReducevSeq *seq = (ReducevSeq *) vseq;
	const Weights *weights = &((ImgedgeReduce *) b)->w;
	VipsRect *r = &out_region->valid;
	int first = weights->start[r->top];
	int end = first;
	int line = r->width * out_region->im->Bands;
	VipsRect need;

	for (int y = r->top; y < VIPS_RECT_BOTTOM(r); y++)
		end = VIPS_MAX(end, weights->start[y] + weights->count[y]);
	need.left = r->left;
	need.top = first;
	need.width = r->width;
	need.height = end - first;
	if (vips_region_prepare(seq->ir, &need))
		return -1;

	for (int y = r->top; y < VIPS_RECT_BOTTOM(r); y++) {
		int n = weights->count[y];

		const int16_t *w = weights->weight + (size_t) y * weights->taps;
		VipsPel *q = VIPS_REGION_ADDR(out_region, r->left, y);

		for (int t = 0; t < n; t++)
			seq->rows[t] = VIPS_REGION_ADDR(seq->ir, r->left, weights->start[y] + t);
#ifdef HAVE_AVX2_PATH
		if (((ImgedgeReduce *) b)->avx2) {
			reducev_row_avx2(seq->rows, n, w, q, line);
			continue;
		}
#endif
		reducev_row(seq->rows, n, w, q, 0, line);
	}
	return 0;
}

/* ---- the operations --------------------------------------------------------------------- */

/* What both passes check and make; `horizontal` picks the axis. */
static int
reduce_build(VipsObject *object, const char *nickname, gboolean horizontal)
{
	ImgedgeReduce *reduce = (ImgedgeReduce *) object;
	VipsImage *in;
	int in_size, size;

	g_object_set(reduce, "out", vips_image_new(), NULL);
	if (VIPS_OBJECT_CLASS(imgedge_reduce_parent_class)->build(object))
		return -1;
	in = reduce->in;
	if (vips_image_pio_input(in) ||
		vips_check_uncoded(nickname, in) ||
		vips_check_format(nickname, in, VIPS_FORMAT_UCHAR))
		return -1;
	if (reduce->shrink < 1.0) {
		vips_error(nickname, "%s", "shrink must be at least 1");
		return -1;
	}
	in_size = horizontal ? in->Xsize : in->Ysize;
	size = VIPS_MAX(1, (int) rint(in_size / reduce->shrink));
	if (weights_make(object, &reduce->w, reduce->shrink, in_size, size))
		return -1;
	reduce->avx2 = use_avx2();
	/* Thin strips: a row needs the same input row (horizontal) or a few whole rows
	 * (vertical), which keeps sequential loaders reading in order. */
	if (vips_image_pipelinev(reduce->out, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL))
		return -1;
	if (horizontal) {
		reduce->out->Xsize = size;
		return vips_image_generate(reduce->out, reduceh_start, reduceh_gen, reduceh_stop, in,
			reduce);
	}
	reduce->out->Ysize = size;
	return vips_image_generate(reduce->out, reducev_start, reducev_gen, reducev_stop, in,
		reduce);
}

static void
imgedge_reduce_class_init(ImgedgeReduceClass *class)
{
	GObjectClass *gobject_class = G_OBJECT_CLASS(class);

	gobject_class->set_property = vips_object_set_property;
	gobject_class->get_property = vips_object_get_property;
	VIPS_ARG_IMAGE(class, "in", 1, "Input", "Input image",
		VIPS_ARGUMENT_REQUIRED_INPUT, G_STRUCT_OFFSET(ImgedgeReduce, in));
	VIPS_ARG_IMAGE(class, "out", 2, "Output", "Output image",
		VIPS_ARGUMENT_REQUIRED_OUTPUT, G_STRUCT_OFFSET(ImgedgeReduce, out));
	VIPS_ARG_DOUBLE(class, "shrink", 3, "Shrink", "Shrink factor",
		VIPS_ARGUMENT_REQUIRED_INPUT, G_STRUCT_OFFSET(ImgedgeReduce, shrink),
		1.0, 1000000.0, 1.0);
}

static void
imgedge_reduce_init(ImgedgeReduce *reduce)
{
	(void) reduce;
}

typedef ImgedgeReduce ImgedgeReduceh;
typedef ImgedgeReduceClass ImgedgeReducehClass;
G_DEFINE_TYPE(ImgedgeReduceh, imgedge_reduceh, imgedge_reduce_get_type());

static int
imgedge_reduceh_build(VipsObject *object)
{
	return reduce_build(object, "imgedge_reduceh", TRUE);
}

static void
imgedge_reduceh_class_init(ImgedgeReducehClass *class)
{
	VIPS_OBJECT_CLASS(class)->nickname = "imgedge_reduceh";
	VIPS_OBJECT_CLASS(class)->description = "horizontal Lanczos3 reduction of an 8-bit image";
	VIPS_OBJECT_CLASS(class)->build = imgedge_reduceh_build;
}

static void
imgedge_reduceh_init(ImgedgeReduceh *reduce)
{
	(void) reduce;
}

typedef ImgedgeReduce ImgedgeReducev;
typedef ImgedgeReduceClass ImgedgeReducevClass;
G_DEFINE_TYPE(ImgedgeReducev, imgedge_reducev, imgedge_reduce_get_type());

static int
imgedge_reducev_build(VipsObject *object)
{
	return reduce_build(object, "imgedge_reducev", FALSE);
}

static void
imgedge_reducev_class_init(ImgedgeReducevClass *class)
{
	VIPS_OBJECT_CLASS(class)->nickname = "imgedge_reducev";
	VIPS_OBJECT_CLASS(class)->description = "vertical Lanczos3 reduction of an 8-bit image";
	VIPS_OBJECT_CLASS(class)->build = imgedge_reducev_build;
}

static void
imgedge_reducev_init(ImgedgeReducev *reduce)
{
	(void) reduce;
}

static int
reduce_run(GType type, VipsImage *in, VipsImage **out, double shrink)
{
	VipsOperation *operation = VIPS_OPERATION(g_object_new(type, NULL));

	g_object_set(operation, "in", in, "shrink", shrink, NULL);
	return imgedge_operation_out(operation, out);
}

int
imgedge_reduceh_uchar(VipsImage *in, VipsImage **out, double hshrink)
{
	return reduce_run(imgedge_reduceh_get_type(), in, out, hshrink);
}

int
imgedge_reducev_uchar(VipsImage *in, VipsImage **out, double vshrink)
{
	return reduce_run(imgedge_reducev_get_type(), in, out, vshrink);
}
