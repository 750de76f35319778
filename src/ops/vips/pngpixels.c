/* The pixels of a PNG that libvips has already opened, inflated in one call.
 *
 * Why: libvips' PNG loader (libpng, up to 8.14) asks zlib for one row at a time, so the image
 * data is inflated in row-sized pieces through zlib's sliding window, and that was a third of a
 * PNG → 300 px request. libdeflate inflates the whole stream into one buffer in about half the
 * time (no window: the output is the history), and the rows are then unfiltered in place.
 *
 * Only the pixels: the header, metadata (ICC, text, EXIF, resolution), checks and limits stay
 * libvips' (`imgedge_load` opens the image with libvips first and hands this its header). Only
 * for what libpng would give without any transform, i.e. what libvips reads it as: 8 bits,
 * grey, grey + alpha, RGB or RGBA, not interlaced, the bands libvips reports (a tRNS chunk adds
 * an alpha band there, and so is left to libvips), at most PNG_PIXELS_MAX bytes once inflated
 * (the whole image is held while it is read; libvips streams larger ones). And only for clean
 * files: every chunk whole, the IDAT chunks together and their CRCs right. If the image data
 * then does not inflate to exactly the image (a damaged stream, too little or too much data, a
 * bad filter byte), the pixels are read through libvips after all, which decides what a
 * damaged PNG gives — so a damaged file reads exactly as before.
 *
 * libvips' loader ignores the zlib stream's Adler-32 (PNG_IGNORE_ADLER32): so does this.
 */

#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <vips/vips.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "shim.h"

/* Larger images are left to libvips, which streams them a strip at a time. */
#define PNG_PIXELS_MAX ((size_t) 64 * 1024 * 1024)

typedef struct {
	const guint8 *buf; /* the file: outlives the image (the caller's contract) */
	size_t len;
	VipsImage *header; /* libvips' load, referenced: read from if inflating fails */
	size_t idat;       /* offset of the first IDAT chunk */
	size_t idat_bytes; /* their data, summed */
	int idat_count;
	int height;
	int bpp; /* bytes per pixel: the bands */
	size_t rowbytes;
	GMutex lock;
	int state;       /* 0: not read yet, 1: read, -1: failed */
	guint8 *pixels;  /* height rows of (filter byte, rowbytes), unfiltered once read */
} PngPixels;

static guint32
be32(const guint8 *p)
{
	return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

/* True when the file is whole and plain enough for this reader (see the top of the file). */
static gboolean
png_pixels_scan(PngPixels *p, VipsImage *header)
{
	static const guint8 signature[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	static const int channels[7] = { 1, 0, 3, 0, 2, 0, 4 };
	size_t pos = 8;
	gboolean in_idat = FALSE, idat_done = FALSE;

	if (p->len < 8 + 12 + 13 || memcmp(p->buf, signature, 8))
		return FALSE;
	for (;;) {
		const guint8 *type, *data;
		guint32 length;

		if (p->len - pos < 12)
			return FALSE;
		length = be32(p->buf + pos);
		if (length > 0x7fffffff || p->len - pos - 12 < length)
			return FALSE;
		type = p->buf + pos + 4;
		data = type + 4;
		if (pos == 8) {
			/* IHDR: width, height, depth, colour type, compression, filter, interlace */
			if (memcmp(type, "IHDR", 4) || length != 13 ||
				be32(data) != (guint32) header->Xsize ||
				be32(data + 4) != (guint32) header->Ysize ||
				data[8] != 8 || data[9] > 6 || channels[data[9]] != header->Bands ||
				data[10] != 0 || data[11] != 0 || data[12] != 0)
				return FALSE;
		}
		if (!memcmp(type, "IDAT", 4)) {
			if (idat_done)
				return FALSE;
			if (!in_idat)
				p->idat = pos;
			in_idat = TRUE;
			p->idat_bytes += length;
			p->idat_count += 1;
		}
		else if (in_idat) {
			in_idat = FALSE;
			idat_done = TRUE;
		}
		/* The chunks the pixels come from; libpng stops on a bad CRC in them. */
		if ((pos == 8 || !memcmp(type, "IDAT", 4)) &&
			libdeflate_crc32(0, type, (size_t) length + 4) != be32(data + length))
			return FALSE;
		if (!memcmp(type, "IEND", 4))
			return idat_done;
		pos += (size_t) length + 12;
	}
}

static int
paeth(int a, int b, int c)
{
	int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);

	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

#ifdef __SSE2__
/* Inlined where bpp is a constant (3 or 4), so the copies are single loads and stores. */
#define INLINE static inline __attribute__((always_inline))

INLINE __m128i
load_pixel(const guint8 *p, int bpp)
{
	guint32 v = 0;

	memcpy(&v, p, bpp);
	return _mm_unpacklo_epi8(_mm_cvtsi32_si128((int) v), _mm_setzero_si128());
}

INLINE void
store_pixel(guint8 *p, __m128i x, int bpp)
{
	guint32 v = (guint32) _mm_cvtsi128_si32(_mm_packus_epi16(x, x));

	memcpy(p, &v, bpp);
}

INLINE __m128i
abs16(__m128i v)
{
	return _mm_max_epi16(v, _mm_sub_epi16(_mm_setzero_si128(), v));
}

/* Average and Paeth for 3 and 4 bytes per pixel, the channels of a pixel side by side in
 * 16-bit lanes: each pixel depends on the one before, so the channels are what runs in
 * parallel. */
INLINE void
unfilter_avg_sse2(guint8 *row, const guint8 *prev, size_t n, int bpp)
{
	const __m128i mask = _mm_set1_epi16(0xff);
	__m128i a = _mm_setzero_si128();

	for (size_t i = 0; i < n; i += bpp) {
		__m128i b = load_pixel(prev + i, bpp);
		__m128i x = load_pixel(row + i, bpp);

		x = _mm_and_si128(_mm_add_epi16(x, _mm_srli_epi16(_mm_add_epi16(a, b), 1)), mask);
		store_pixel(row + i, x, bpp);
		a = x;
	}
}

INLINE void
unfilter_paeth_sse2(guint8 *row, const guint8 *prev, size_t n, int bpp)
{
	const __m128i mask = _mm_set1_epi16(0xff);
	__m128i a = _mm_setzero_si128(), c = _mm_setzero_si128();

	for (size_t i = 0; i < n; i += bpp) {
		__m128i b = load_pixel(prev + i, bpp);
		__m128i x = load_pixel(row + i, bpp);
		__m128i bc = _mm_sub_epi16(b, c), ac = _mm_sub_epi16(a, c);
		__m128i pa = abs16(bc), pb = abs16(ac), pc = abs16(_mm_add_epi16(bc, ac));
		__m128i least = _mm_min_epi16(_mm_min_epi16(pa, pb), pc);
		__m128i is_a = _mm_cmpeq_epi16(pa, least);
		__m128i is_b = _mm_andnot_si128(is_a, _mm_cmpeq_epi16(pb, least));
		__m128i is_c = _mm_andnot_si128(_mm_or_si128(is_a, is_b), _mm_cmpeq_epi16(x, x));
		__m128i pred = _mm_or_si128(_mm_or_si128(_mm_and_si128(is_a, a), _mm_and_si128(is_b, b)),
			_mm_and_si128(is_c, c));

		x = _mm_and_si128(_mm_add_epi16(x, pred), mask);
		store_pixel(row + i, x, bpp);
		a = x;
		c = b;
	}
}
#endif /*__SSE2__*/

/* Undoes one row's filter in place; prev is the row above, already unfiltered (zeros above
 * the first). FALSE for a filter type PNG does not have. */
static gboolean
unfilter(int type, guint8 *row, const guint8 *prev, size_t n, int bpp)
{
	size_t i;

	switch (type) {
	case 0:
		return TRUE;
	case 1:
		for (i = bpp; i < n; i++)
			row[i] += row[i - bpp];
		return TRUE;
	case 2:
		for (i = 0; i < n; i++)
			row[i] += prev[i];
		return TRUE;
	case 3:
#ifdef __SSE2__
		if (bpp >= 3) {
			if (bpp == 4)
				unfilter_avg_sse2(row, prev, n, 4);
			else
				unfilter_avg_sse2(row, prev, n, 3);
			return TRUE;
		}
#endif
		for (i = 0; i < (size_t) bpp; i++)
			row[i] += prev[i] >> 1;
		for (; i < n; i++)
			row[i] += (row[i - bpp] + prev[i]) >> 1;
		return TRUE;
	case 4:
#ifdef __SSE2__
		if (bpp >= 3) {
			if (bpp == 4)
				unfilter_paeth_sse2(row, prev, n, 4);
			else
				unfilter_paeth_sse2(row, prev, n, 3);
			return TRUE;
		}
#endif
		for (i = 0; i < (size_t) bpp; i++)
			row[i] += prev[i];
		for (; i < n; i++)
			row[i] += paeth(row[i - bpp], prev[i], prev[i - bpp]);
		return TRUE;
	default:
		return FALSE;
	}
}

/* Inflates and unfilters the whole image into p->pixels. -1 when the data is not exactly a
 * valid image (nothing reported: the caller reads through libvips instead). */
static int
png_pixels_inflate(PngPixels *p)
{
	const size_t stride = p->rowbytes + 1;
	const guint8 *z;
	guint8 *joined = NULL, *zeros;
	struct libdeflate_decompressor *d;
	enum libdeflate_result result;
	int y;

	if (p->idat_bytes < 2)
		return -1;
	/* One IDAT: the stream in place. Several: their data joined, in order. */
	if (p->idat_count == 1)
		z = p->buf + p->idat + 8;
	else {
		size_t pos = p->idat, at = 0;

		joined = g_malloc(p->idat_bytes);
		for (int i = 0; i < p->idat_count; i++) {
			guint32 length = be32(p->buf + pos);

			memcpy(joined + at, p->buf + pos + 8, length);
			at += length;
			pos += (size_t) length + 12;
		}
		z = joined;
	}
	/* The zlib header as libpng checks it: deflate, a window of at most 32 KB, the check
	 * bits, no preset dictionary. */
	if ((z[0] & 0x0f) != 8 || (z[0] >> 4) > 7 ||
		((z[0] << 8) | z[1]) % 31 != 0 || (z[1] & 0x20)) {
		g_free(joined);
		return -1;
	}
	if (!(d = libdeflate_alloc_decompressor())) {
		g_free(joined);
		return -1;
	}
	/* Exactly the image's bytes, or it is not one. */
	result = libdeflate_deflate_decompress(d, z + 2, p->idat_bytes - 2, p->pixels,
		stride * p->height, NULL);
	libdeflate_free_decompressor(d);
	g_free(joined);
	if (result != LIBDEFLATE_SUCCESS)
		return -1;

	zeros = g_malloc0(p->rowbytes);
	for (y = 0; y < p->height; y++) {
		guint8 *row = p->pixels + y * stride;
		const guint8 *prev = y ? row - stride + 1 : zeros;

		if (!unfilter(row[0], row + 1, prev, p->rowbytes, p->bpp))
			break;
	}
	g_free(zeros);
	return y == p->height ? 0 : -1;
}

/* The pixels as libvips' own loader gives them, for a stream this reader turned down. */
static int
png_pixels_through_libvips(PngPixels *p)
{
	size_t size;
	guint8 *all;

	if (!(all = vips_image_write_to_memory(p->header, &size)))
		return -1;
	for (int y = 0; y < p->height; y++)
		memcpy(p->pixels + y * (p->rowbytes + 1) + 1, all + y * p->rowbytes, p->rowbytes);
	g_free(all);
	return 0;
}

static int
png_pixels_gen(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop)
{
	PngPixels *p = (PngPixels *) a;
	VipsRect *r = &out_region->valid;
	int state;

	(void) seq;
	(void) b;
	(void) stop;
	g_mutex_lock(&p->lock);
	if (p->state == 0) {
		p->pixels = g_try_malloc((p->rowbytes + 1) * p->height);
		p->state = p->pixels &&
				(!png_pixels_inflate(p) || !png_pixels_through_libvips(p))
			? 1
			: -1;
	}
	state = p->state;
	g_mutex_unlock(&p->lock);
	if (state < 0) {
		vips_error("VipsPng", "%s", "unable to read the image data");
		return -1;
	}
	for (int y = 0; y < r->height; y++)
		memcpy(VIPS_REGION_ADDR(out_region, r->left, r->top + y),
			p->pixels + (size_t) (r->top + y) * (p->rowbytes + 1) + 1 +
				(size_t) r->left * p->bpp,
			(size_t) r->width * p->bpp);
	return 0;
}

static void
png_pixels_close(VipsImage *image, PngPixels *p)
{
	(void) image;
	VIPS_UNREF(p->header);
	g_free(p->pixels);
	g_mutex_clear(&p->lock);
	g_free(p);
}

/* How many loads took this path, for the tests that say it is taken. */
static int used;

int
imgedge_png_pixels_used(void)
{
	return g_atomic_int_get(&used);
}

/* An image like `header` (a libvips PNG load not yet decoded) whose pixels are read here from
 * buf (which must outlive it), or NULL with no error set when this reader does not apply. */
int
imgedge_png_pixels(VipsImage *header, const void *buf, size_t len, VipsImage **out)
{
	PngPixels *p;
	VipsImage *raw;

	*out = NULL;
	if (vips_image_get_format(header) != VIPS_FORMAT_UCHAR ||
		vips_image_get_coding(header) != VIPS_CODING_NONE || header->Bands > 4)
		return 0;
	p = g_new0(PngPixels, 1);
	p->buf = (const guint8 *) buf;
	p->len = len;
	p->height = header->Ysize;
	p->bpp = header->Bands;
	p->rowbytes = (size_t) header->Xsize * header->Bands;
	/* The size first: a file too large for this reader is not worth a pass over its chunks. */
	if ((p->rowbytes + 1) * (size_t) p->height > PNG_PIXELS_MAX ||
		!png_pixels_scan(p, header)) {
		g_free(p);
		return 0;
	}
	g_mutex_init(&p->lock);
	p->header = header;
	g_object_ref(header);

	raw = vips_image_new();
	if (vips_image_pipelinev(raw, VIPS_DEMAND_STYLE_FATSTRIP, header, NULL)) {
		g_object_unref(raw);
		png_pixels_close(NULL, p);
		return -1;
	}
	g_signal_connect(raw, "close", G_CALLBACK(png_pixels_close), p);
	if (vips_image_generate(raw, NULL, png_pixels_gen, NULL, p, NULL)) {
		g_object_unref(raw);
		return -1;
	}
	*out = raw;
	g_atomic_int_inc(&used);
	return 0;
}
