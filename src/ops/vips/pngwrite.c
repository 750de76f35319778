/* PNG written in the calling thread and deflated in one call by libdeflate.
 *
 * Why: libvips' pngsave pulls the image through vips_sink_disc (a worker thread computing each
 * strip for the calling one) into libpng, which picks each row's filter and deflates through
 * zlib (zlib-rs here, zlib.rs); in a PNG-alpha → 300 px request the deflate was a third of the
 * CPU and libpng's filter search a tenth. libdeflate (already linked for pngpixels.c) compresses
 * a whole buffer no larger than zlib 1.2 at the same level, in a third of its time and two
 * thirds of zlib-rs' (docs/performance.md, change 27). On libvips 8.16 (the Docker image) the
 * saver is libspng's, a fifth slower again; this writer serves both.
 *
 * What is written is what libvips 8.14's pngsave writes, chunk for chunk, except the bytes of
 * compressed data: IHDR (8-bit, not interlaced), iCCP "icc" where libpng accepts the profile
 * for the colour type, eXIf (the EXIF block rebuilt, once: libpng 1.6.39 repeats it
 * after the image data), pHYs, the XMP and every `png-comment-N-key` as zTXt, then the image
 * data, rows filtered by the minimum-sum-of-absolute-differences heuristic (the PNG spec's
 * recommendation, libpng's with every filter on). The metadata are those left on the image
 * libvips' saver would write (saveready.c); nothing when stripped. The tests read our files
 * and libvips' back with libvips and compare pixels and every metadata field.
 *
 * Only for 8-bit sRGB (3 or 4 bands) or B_W (1 or 2 bands) uncoded images, not interlaced, no
 * palette, compression 0-7, comments with plain keywords, filtered data up to MAX_FILTERED;
 * anything else (16-bit, Adam7, quantised palettes, huge images that libpng streams in bounded
 * memory) goes to libvips.
 */

#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <png.h>
#define VIPS_DISABLE_COMPAT
#include <vips/vips.h>

#include "shim.h"

/* The filtered image and its compressed form are both held whole: above this many filtered
 * bytes (8 MP RGBA) libvips' streaming saver is used instead, so a request holds at most
 * twice this. */
#define MAX_FILTERED (32u << 20)

/* libdeflate's level for each of zlib's (`compression`, as imaginary's users know it): the
 * cheapest that writes files no larger than zlib 1.2 at that level, measured on a photo, a
 * logo, a noisy RGBA image, a flat drawing and a smart-crop subject (and tested). At 8 and 9
 * zlib's long match chains beat every libdeflate level on flat drawings: those stay libvips'
 * (zlib-rs, zlib.rs). */
static const int deflate_level[8] = { 0, 2, 3, 6, 6, 5, 6, 7 };

/* IDAT chunks of this size, as libpng writes them (PNG_ZBUF_SIZE). */
#define IDAT_SIZE 8192

static __thread int used;

int
imgedge_png_write_used(void)
{
	return used;
}

static void
png_silent(png_structp png, png_const_charp message)
{
	(void) png;
	(void) message;
}

static void
png_fail(png_structp png, png_const_charp message)
{
	(void) message;
	png_longjmp(png, 1);
}

static gpointer
find_spng(gpointer data)
{
	GType saver = vips_type_find("VipsOperation", "pngsave_buffer");

	(void) data;
	return GINT_TO_POINTER(saver && strstr(g_type_name(saver), "Spng"));
}

/* Whether libvips' PNG saver is libspng's (libvips 8.15 and 8.16 built with it), which writes
 * whatever profile its base class left on the image. */
static gboolean
saver_is_spng(void)
{
	static GOnce once = G_ONCE_INIT;

	return GPOINTER_TO_INT(g_once(&once, find_spng, NULL));
}

/* Whether libvips' saver writes this ICC profile into a PNG of this colour type. libpng's
 * writes the PNG without a profile it refuses, and on write it refuses much that it only warns
 * about on read (a PCS illuminant other than D50, an unknown class, known broken sRGB
 * profiles, besides malformed headers and tag tables): asked of libpng itself. */
static gboolean
icc_fits_png(const void *profile, size_t length, int colour_type)
{
	png_structp png;
	png_infop info;
	volatile gboolean fits = FALSE;

	if (saver_is_spng())
		return TRUE;
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_silent);
	info = png ? png_create_info_struct(png) : NULL;

	if (info && length <= PNG_UINT_31_MAX && !setjmp(png_jmpbuf(png))) {
		png_set_IHDR(png, info, 1, 1, 8, colour_type, PNG_INTERLACE_NONE,
			PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
		png_set_iCCP(png, info, "icc", PNG_COMPRESSION_TYPE_BASE, profile,
			(png_uint_32) length);
		fits = png_get_valid(png, info, PNG_INFO_iCCP) != 0;
	}
	png_destroy_write_struct(&png, info ? &info : NULL);
	return fits;
}

/* A png-comment-N-KEY field whose key libpng writes as it is (1-79 printable Latin-1
 * characters without spaces, as sscanf's %s leaves them): NULL for fields that are not
 * comments, "" for keys this writer leaves to libvips. */
static const char *
comment_key(const char *field)
{
	const char *key;

	if (!vips_isprefix("png-comment-", field))
		return NULL;
	key = field + strlen("png-comment-");
	while (g_ascii_isdigit(*key))
		key++;
	if (key == field + strlen("png-comment-") || *key++ != '-')
		return "";
	for (const char *c = key; *c; c++)
		if (!((guint8) *c > 32 && (guint8) *c <= 126) && (guint8) *c < 161)
			return "";
	return *key && strlen(key) <= 79 ? key : "";
}

static void *
unusual_comment(VipsImage *image, const char *field, GValue *value, void *data)
{
	const char *key = comment_key(field);

	(void) image;
	(void) data;
	return key && (!*key || !(G_VALUE_HOLDS_STRING(value) ||
					G_VALUE_HOLDS(value, VIPS_TYPE_REF_STRING)))
		? (void *) field
		: NULL;
}

/* Compressions of 8 and 9 (above) and out of range (for its error) are left to libvips. */
gboolean
imgedge_png_write_applies(VipsImage *in, int compression, int interlace, int palette)
{
	size_t filtered = ((size_t) in->Xsize * in->Bands + 1) * in->Ysize;

	return !interlace && !palette && compression >= 0 &&
		compression < (int) G_N_ELEMENTS(deflate_level) &&
		in->Coding == VIPS_CODING_NONE && in->BandFmt == VIPS_FORMAT_UCHAR &&
		(((in->Bands == 3 || in->Bands == 4) && in->Type == VIPS_INTERPRETATION_sRGB) ||
			((in->Bands == 1 || in->Bands == 2) &&
				in->Type == VIPS_INTERPRETATION_B_W)) &&
		filtered <= MAX_FILTERED && !vips_image_map(in, unusual_comment, NULL) &&
		imgedge_save_ready_applies();
}

/* One compressor per thread, kept for the thread's next PNG (it is a few hundred KB of
 * tables that every compression sets up anyway); freed when the thread ends. */
typedef struct {
	int level;
	struct libdeflate_compressor *compressor;
} Deflater;

static void
deflater_free(gpointer data)
{
	Deflater *d = data;

	libdeflate_free_compressor(d->compressor);
	g_free(d);
}

static GPrivate deflater_key = G_PRIVATE_INIT(deflater_free);

static struct libdeflate_compressor *
compressor_of(int level)
{
	Deflater *d = g_private_get(&deflater_key);

	if (d && d->compressor && d->level == level)
		return d->compressor;
	if (!d) {
		d = g_new0(Deflater, 1);
		g_private_set(&deflater_key, d);
	}
	libdeflate_free_compressor(d->compressor);
	d->level = level;
	if (!(d->compressor = libdeflate_alloc_compressor(level)))
		vips_error("pngwrite", "no compressor for level %d", level);
	return d->compressor;
}

/* The zlib stream of `len` bytes, in a new buffer; NULL with vips_error set. */
static guint8 *
zlib_of(int level, const void *data, size_t len, size_t *out_len)
{
	struct libdeflate_compressor *c = compressor_of(level);
	size_t bound;
	guint8 *out;

	if (!c)
		return NULL;
	bound = libdeflate_zlib_compress_bound(c, len);
	if (!(out = g_try_malloc(bound))) {
		vips_error("pngwrite", "failed to allocate %zu bytes", bound);
		return NULL;
	}
	/* Never 0: the bound is enough for any input. */
	*out_len = libdeflate_zlib_compress(c, data, len, out, bound);
	return out;
}

/* v at p, big-endian (PNG's byte order). */
static void
store32(guint8 *p, guint32 v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void
put32(GByteArray *png, guint32 v)
{
	guint8 b[4];

	store32(b, v);
	g_byte_array_append(png, b, 4);
}

/* A chunk: its data given in up to two parts (a header and a body). */
static void
chunk(GByteArray *png, const char *type, const void *head, size_t head_len, const void *body,
	size_t body_len)
{
	guint32 crc = libdeflate_crc32(0, type, 4);

	/* (libdeflate_crc32 starts over when given no buffer.) */
	if (head_len)
		crc = libdeflate_crc32(crc, head, head_len);
	if (body_len)
		crc = libdeflate_crc32(crc, body, body_len);
	put32(png, head_len + body_len);
	g_byte_array_append(png, (const guint8 *) type, 4);
	g_byte_array_append(png, head, head_len);
	g_byte_array_append(png, body, body_len);
	put32(png, crc);
}

/* A zTXt or iCCP chunk: keyword, NUL, method 0, the zlib stream. */
static int
compressed_chunk(GByteArray *png, const char *type, const char *key, const void *data,
	size_t len, int level)
{
	size_t z_len;
	guint8 *z = zlib_of(level, data, len, &z_len);
	size_t key_len = strlen(key);
	guint8 head[82];

	if (!z)
		return -1;
	memcpy(head, key, key_len);
	head[key_len] = head[key_len + 1] = 0;
	chunk(png, type, head, key_len + 2, z, z_len);
	g_free(z);
	return 0;
}

typedef struct {
	GByteArray *png;
	int level;
} Comments;

static void *
write_comment(VipsImage *image, const char *field, GValue *value, void *data)
{
	Comments *c = data;
	const char *key = comment_key(field), *text;

	(void) value;
	if (!key)
		return NULL;
	if (vips_image_get_string(image, field, &text) ||
		compressed_chunk(c->png, "zTXt", key, text, strlen(text), c->level))
		return image;
	return NULL;
}

/* Everything before the image data; comments unless stripped (libvips' saver keeps them on
 * the image, and its PNG writer leaves them out then). */
static int
write_header(GByteArray *png, VipsImage *image, int level, int strip)
{
	static const guint8 signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	static const guint8 colour_type[] = { 0, 0, 4, 2, 6 };
	guint8 ihdr[13] = { 0 }, phys[9];
	const void *data;
	size_t len;
	Comments comments = { png, level };

	g_byte_array_append(png, signature, 8);
	store32(ihdr, image->Xsize);
	store32(ihdr + 4, image->Ysize);
	ihdr[8] = 8;
	ihdr[9] = colour_type[image->Bands];
	chunk(png, "IHDR", ihdr, 13, NULL, 0);

	if (vips_image_get_typeof(image, VIPS_META_ICC_NAME)) {
		if (vips_image_get_blob(image, VIPS_META_ICC_NAME, &data, &len))
			return -1;
		if (icc_fits_png(data, len, colour_type[image->Bands]) &&
			compressed_chunk(png, "iCCP", "icc", data, len, level))
			return -1;
	}
	if (vips_image_get_typeof(image, VIPS_META_EXIF_NAME)) {
		if (vips_image_get_blob(image, VIPS_META_EXIF_NAME, &data, &len))
			return -1;
		/* Without the JPEG APP1 "Exif\0\0" prefix, as libvips hands it to libpng. */
		if (len >= 6 && vips_isprefix("Exif", data)) {
			data = (const guint8 *) data + 6;
			len -= 6;
		}
		chunk(png, "eXIf", data, len, NULL, 0);
	}
	/* Pixels per metre (libvips' resolution is per millimetre). */
	store32(phys, VIPS_RINT(image->Xres * 1000));
	store32(phys + 4, VIPS_RINT(image->Yres * 1000));
	phys[8] = 1; /* metres */
	chunk(png, "pHYs", phys, 9, NULL, 0);
	if (vips_image_get_typeof(image, VIPS_META_XMP_NAME)) {
		if (vips_image_get_blob(image, VIPS_META_XMP_NAME, &data, &len))
			return -1;
		/* libvips hands libpng the XMP as a C string: up to its first NUL. */
		if (compressed_chunk(png, "zTXt", "XML:com.adobe.xmp", data, strnlen(data, len),
			    level))
			return -1;
	}
	if (!strip && vips_image_map(image, write_comment, &comments))
		return -1;
	return 0;
}

static guint8
paeth(guint8 a, guint8 b, guint8 c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);

	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* The sum the heuristic minimises: each filtered byte as a signed value, its magnitude. */
static size_t
cost(const guint8 *f, size_t n)
{
	size_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += f[i] < 128 ? f[i] : 256 - f[i];
	return sum;
}

/* `row` filtered by `type` (1-4) into `out`; `prev` is the row above (zeros above the first). */
static void
filter(int type, const guint8 *row, const guint8 *prev, size_t n, int bpp, guint8 *out)
{
	size_t i;

	/* The first pixel has no left neighbour (and none above-left): a = c = 0. */
	for (i = 0; i < (size_t) bpp && i < n; i++)
		out[i] = row[i] - (type == 1 ? 0 : type == 3 ? prev[i] / 2 : prev[i]);
	switch (type) {
	case 1:
		for (; i < n; i++)
			out[i] = row[i] - row[i - bpp];
		break;
	case 2:
		for (; i < n; i++)
			out[i] = row[i] - prev[i];
		break;
	case 3:
		for (; i < n; i++)
			out[i] = row[i] - (row[i - bpp] + prev[i]) / 2;
		break;
	default:
		for (; i < n; i++)
			out[i] = row[i] - paeth(row[i - bpp], prev[i], prev[i - bpp]);
		break;
	}
}

/* `row` filtered into out[0] (the type) and out[1..n] with the filter whose output costs
 * least, the earlier one on a tie (None, Sub, Up, Average, Paeth); `try` is scratch. */
static void
filter_row(const guint8 *row, const guint8 *prev, size_t n, int bpp, guint8 *out, guint8 *try)
{
	size_t best;

	out[0] = 0;
	memcpy(out + 1, row, n);
	best = cost(row, n);
	for (int type = 1; type <= 4; type++) {
		size_t c;

		filter(type, row, prev, n, bpp, try);
		if ((c = cost(try, n)) < best) {
			best = c;
			out[0] = type;
			memcpy(out + 1, try, n);
		}
	}
}

typedef struct {
	int bpp;
	size_t n;	/* bytes per row */
	guint8 *out;	/* (n + 1) per row */
	guint8 *prev;	/* the row above, zeros above the first */
	guint8 *try;
} Filtering;

static void
filter_next(int y, const VipsPel *row, void *data)
{
	Filtering *f = data;

	filter_row(row, f->prev, f->n, f->bpp, f->out + (f->n + 1) * y, f->try);
	memcpy(f->prev, row, f->n);
}

/* The image's rows, filtered, one after another: the zlib stream's input. */
static guint8 *
filtered_of(VipsImage *image, size_t *len)
{
	size_t n = (size_t) image->Xsize * image->Bands;
	Filtering f = { image->Bands, n, g_try_malloc((n + 1) * image->Ysize), g_malloc0(n),
		g_malloc(n) };

	if (!f.out)
		vips_error("pngwrite", "failed to allocate %zu bytes", (n + 1) * image->Ysize);
	else if (imgedge_each_row(image, filter_next, &f))
		g_free(g_steal_pointer(&f.out));
	g_free(f.prev);
	g_free(f.try);
	*len = (n + 1) * image->Ysize;
	return f.out;
}

int
imgedge_png_write(VipsImage *in, void **buf, size_t *len, int compression, int strip)
{
	VipsImage *image = NULL;
	GByteArray *png = NULL;
	guint8 *filtered = NULL, *z = NULL;
	size_t filtered_len, z_len;
	int level, result = -1;

	if (!imgedge_png_write_applies(in, compression, FALSE, FALSE)) {
		vips_error("pngwrite", "%s", "image or settings need libvips' saver");
		return -1;
	}
	level = deflate_level[compression];
	if (imgedge_save_ready(in, strip, &image))
		return -1;
#if VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION == 14
	/* 8.14's pngsave rebuilds EXIF only where the image has some (its JPEG and WebP savers,
	 * and every saver from 8.15 on, make a block for any image). */
	if (!vips_image_get_typeof(in, VIPS_META_EXIF_NAME))
		vips_image_remove(image, VIPS_META_EXIF_NAME);
#endif
	if (vips_image_pio_input(image) || !(filtered = filtered_of(image, &filtered_len)) ||
		!(z = zlib_of(level, filtered, filtered_len, &z_len)))
		goto done;
	g_free(g_steal_pointer(&filtered));
	/* The image data's size, its chunks' framing, and room for the rest. */
	png = g_byte_array_sized_new(z_len + z_len / IDAT_SIZE * 12 + 4096);
	if (write_header(png, image, level, strip))
		goto done;
	for (size_t at = 0; at < z_len; at += IDAT_SIZE)
		chunk(png, "IDAT", z + at, VIPS_MIN(IDAT_SIZE, z_len - at), NULL, 0);
	chunk(png, "IEND", NULL, 0, NULL, 0);
	*len = png->len;
	*buf = g_byte_array_free(png, FALSE);
	png = NULL;
	used++;
	result = 0;
done:
	if (png)
		g_byte_array_free(png, TRUE);
	g_free(z);
	g_free(filtered);
	VIPS_UNREF(image);
	return result;
}
