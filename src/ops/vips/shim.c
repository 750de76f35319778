/* imgedge's libvips shim: fixed-signature C wrappers over libvips' varargs calls.
 *
 * Why C and not generated Rust bindings: libvips options are passed as NULL-terminated
 * name/value varargs, checked only at run time, and renamed between releases (`strip` became
 * `keep` in 8.15). Compiling this file against the installed headers turns each rename into an
 * `#if` on VIPS_MINOR_VERSION, and gives Rust plain functions to declare (like imgproxy's vips.c
 * and bimg's vips.h). Every function returns 0/-1 and leaves libvips' error buffer for the Rust
 * side to read (src/ops/vips/mod.rs).
 *
 * Varargs hygiene: every int-typed option receives an `int` (gboolean and enums are ints),
 * every double option a `double`; a wrong type here is undefined behaviour, not an error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "shim.h"

#if VIPS_MAJOR_VERSION > 8 || (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION >= 15)
#define IMGEDGE_HAS_KEEP 1
#else
#define IMGEDGE_HAS_KEEP 0
/* Up to 8.14 the vector paths are orc's JIT (see "orc" below). */
#include <dlfcn.h>
#include <vips/vector.h>
#endif

#if !IMGEDGE_HAS_KEEP
/* orc. libvips up to 8.14 JIT-compiles an orc program in every uchar reducev (every resize),
 * convi and morph it builds, and frees it when the operation is finalised. liborc before 0.4.34
 * (Debian 12 ships 0.4.33) splits, merges and frees its code-memory chunk list outside its lock
 * (fixed by orc commit e48fa544, "Fix for potential race in codemem alloc/free"), so two workers
 * building or dropping resizes at once corrupted the malloc heap: "malloc_consolidate():
 * unaligned fastbin chunk detected" after a few thousand requests.
 *
 * libvips reaches that list only through orc_program_compile and orc_program_free. This
 * executable defines both (exported by build.rs with --export-dynamic-symbol, so the dynamic
 * linker binds libvips' calls here before liborc) and runs the real ones under one lock:
 * compiling is a few microseconds per resize built, running the compiled code is untouched.
 * Recursive, in case liborc calls one through the other. 8.15 and later use highway, not orc. */
typedef struct _OrcProgram OrcProgram;

static GRecMutex orc_lock;
static gint orc_guarded_calls;

/* liborc's own functions, behind ours in lookup order. Found on first use (libvips may reach
 * orc before imgedge_init looks), once. */
static struct {
	int (*compile)(OrcProgram *);
	void (*free)(OrcProgram *);
} real_orc;

static void
find_real_orc(void)
{
	static gsize done = 0;

	if (g_once_init_enter(&done)) {
		real_orc.compile = dlsym(RTLD_NEXT, "orc_program_compile");
		real_orc.free = dlsym(RTLD_NEXT, "orc_program_free");
		g_once_init_leave(&done, 1);
	}
}

int orc_program_compile(OrcProgram *program);
void orc_program_free(OrcProgram *program);

int
orc_program_compile(OrcProgram *program)
{
	/* ORC_COMPILE_RESULT_UNKNOWN_COMPILE: not compiled, libvips takes its C path. */
	int result = 0x100;

	find_real_orc();
	g_rec_mutex_lock(&orc_lock);
	if (real_orc.compile)
		result = real_orc.compile(program);
	g_rec_mutex_unlock(&orc_lock);
	g_atomic_int_inc(&orc_guarded_calls);
	return result;
}

void
orc_program_free(OrcProgram *program)
{
	find_real_orc();
	g_rec_mutex_lock(&orc_lock);
	if (real_orc.free)
		real_orc.free(program);
	g_rec_mutex_unlock(&orc_lock);
}

/* True when libvips' calls into orc come here: both real functions were found behind ours and
 * the process-wide lookup (what libvips binds to) gives ours. */
static int
imgedge_orc_guarded(void)
{
	find_real_orc();
	return real_orc.compile && real_orc.free &&
		dlsym(RTLD_DEFAULT, "orc_program_compile") == (void *) orc_program_compile &&
		dlsym(RTLD_DEFAULT, "orc_program_free") == (void *) orc_program_free;
}
#endif

int
imgedge_orc_guarded_calls(void)
{
#if !IMGEDGE_HAS_KEEP
	return g_atomic_int_get(&orc_guarded_calls);
#else
	return 0;
#endif
}

/* zlib. zlib-rs stands in for the system's zlib (build.rs, zlib.rs) and defines all of its API
 * but the two varargs functions, which Rust cannot define; they are here, on its gzwrite, so
 * that no gzFile of zlib-rs ever reaches the system's zlib. zlib's rules: at most the gzFile's
 * buffer (8 KiB by default) per call; 0 when the text does not fit. */
typedef struct gzFile_s *gzFile;
int gzwrite(gzFile file, const void *buf, unsigned len);
int gzvprintf(gzFile file, const char *format, va_list va);
int gzprintf(gzFile file, const char *format, ...);

int
gzvprintf(gzFile file, const char *format, va_list va)
{
	char text[8192];
	int len;

	if (!file || !format)
		return -2; /* Z_STREAM_ERROR */
	len = vsnprintf(text, sizeof(text), format, va);
	if (len <= 0 || (size_t) len >= sizeof(text))
		return 0;
	return gzwrite(file, text, (unsigned) len);
}

int
gzprintf(gzFile file, const char *format, ...)
{
	va_list va;
	int written;

	va_start(va, format);
	written = gzvprintf(file, format, va);
	va_end(va);
	return written;
}

/* The metadata option of every saver: `strip` up to 8.14, `keep` from 8.15 on. Expands to a
 * name/value pair for the varargs list. */
#if IMGEDGE_HAS_KEEP
#define IMGEDGE_STRIP(strip) \
	"keep", (int) ((strip) ? VIPS_FOREIGN_KEEP_NONE : VIPS_FOREIGN_KEEP_ALL)
#else
#define IMGEDGE_STRIP(strip) "strip", (int) ((strip) ? TRUE : FALSE)
#endif

#define IMGEDGE_BOOL(x) ((int) ((x) ? TRUE : FALSE))

/* ------------------------------------------------------------------------------------------ */
/* Lifecycle and errors */

int
imgedge_init(int concurrency)
{
	const char *env;

	if (VIPS_INIT("imgedge"))
		return -1;

	/* Caching is ours (cache/): libvips' operation cache would only hold memory and, for
	 * buffer loaders, pointers into buffers it does not own. */
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);

	/* VIPS_CONCURRENCY, when set, is honoured by libvips itself (as in imaginary/bimg);
	 * otherwise the caller's value, default 1 (best throughput with many concurrent
	 * requests). */
	env = g_getenv("VIPS_CONCURRENCY");
	if (!env || atoi(env) <= 0)
		vips_concurrency_set(concurrency > 0 ? concurrency : 1);

	vips_leak_set(FALSE);

#if !IMGEDGE_HAS_KEEP
	/* See "orc" below: without the guard in front of orc, libvips' C paths instead (as
	 * VIPS_NOVECTOR=1 does), 17-28 % slower but safe. */
	if (!imgedge_orc_guarded())
		vips_vector_set_enabled(FALSE);
#endif

	/* ImageMagick's loader accepts almost anything; inputs are sniffed before they reach
	 * libvips and no accepted format needs it. Block it so a malformed file that a native
	 * loader rejects is not handed to ImageMagick instead. */
	vips_operation_block_set("VipsForeignLoadMagick", TRUE);

	return 0;
}

int
imgedge_operation_exists(const char *nickname)
{
	return vips_type_find("VipsOperation", nickname) != 0;
}

/* Read-and-clear, atomically under libvips' error lock. The buffer is process-wide: callers
 * take it right after the failing call. Free the result with g_free(). */
char *
imgedge_error_take(void)
{
	return vips_error_buffer_copy();
}

void
imgedge_thread_shutdown(void)
{
	vips_thread_shutdown();
}

const char *
imgedge_version(void)
{
	return vips_version_string();
}

/* ------------------------------------------------------------------------------------------ */
/* Loading */

/* libvips' own loader, whatever the format. */
int
imgedge_load_libvips(const void *buf, size_t len, int sequential, int fail_on, int pages,
	VipsImage **out)
{
	VipsImage *image;

	/* pages: every frame of a GIF/WebP, stacked (`n=-1`). An option string, because loaders
	 * without the option (JPEG, PNG…) would refuse it as a named argument. */
	image = vips_image_new_from_buffer(buf, len, pages ? "n=-1" : "",
		"access", (int) (sequential ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM),
		"fail_on", fail_on,
		NULL);
	if (!image)
		return -1;
	*out = image;
	return 0;
}

/* The same, but the pixels of an 8-bit PNG loaded with fail_on none are inflated by
 * pngpixels.c (the same bytes, in about half libpng's time: see there). */
int
imgedge_load(const void *buf, size_t len, int sequential, int fail_on, int pages,
	VipsImage **out)
{
	VipsImage *pixels;
	const char *loader;

	if (imgedge_load_libvips(buf, len, sequential, fail_on, pages, out))
		return -1;
	if (fail_on == VIPS_FAIL_ON_NONE &&
		!vips_image_get_string(*out, "vips-loader", &loader) &&
		vips_isprefix("pngload", loader)) {
		if (imgedge_png_pixels(*out, buf, len, &pixels)) {
			VIPS_UNREF(*out);
			return -1;
		}
		if (pixels) {
			g_object_unref(*out);
			*out = pixels;
		}
	}
	return 0;
}

/* JPEG with libjpeg's DCT-domain shrink (1, 2, 4 or 8): the decoder skips most of the work.
 * libvips reads the header and metadata; the pixels of a baseline 8-bit JPEG loaded with
 * fail_on none are decoded by jpegpixels.c (the same bytes, 5 % faster: see there). */
int
imgedge_load_jpeg(const void *buf, size_t len, int shrink, int fail_on, VipsImage **out)
{
	VipsImage *header, *pixels = NULL;

	if (vips_jpegload_buffer((void *) buf, len, &header,
			"shrink", shrink,
			"access", (int) VIPS_ACCESS_SEQUENTIAL,
			"fail_on", fail_on,
			NULL))
		return -1;
	if (fail_on == VIPS_FAIL_ON_NONE &&
		imgedge_jpeg_pixels(header, buf, len, shrink, &pixels)) {
		g_object_unref(header);
		return -1;
	}
	if (pixels) {
		g_object_unref(header);
		*out = pixels;
	}
	else
		*out = header;
	return 0;
}

/* Shrunk loads whose header came from the full one, in this thread (for the tests). */
static __thread int jpeg_headers_reused;

int
imgedge_jpeg_headers_reused(void)
{
	return jpeg_headers_reused;
}

/* imgedge_load_jpeg at 1/shrink for the bytes whose full-size libvips JPEG load `full` is
 * already open (the request's header): where jpegpixels.c decodes the pixels, libvips' header
 * at 1/shrink is `full`'s with the size divided, rounded down as libvips rounds it, so it is
 * made from `full` instead of parsing the markers, EXIF and ICC profile a second time (1.6 %
 * of a 2 MP JPEG → 300 request). Everything else is opened again. */
int
imgedge_load_jpeg_from(VipsImage *full, const void *buf, size_t len, int shrink,
	VipsImage **out)
{
	VipsImage *header, *pixels = NULL;
	const char *loader;

	if (shrink <= 1 || vips_image_get_string(full, "vips-loader", &loader) ||
		strcmp(loader, "jpegload_buffer") != 0 || !imgedge_jpeg_pixels_applies(full))
		return imgedge_load_jpeg(buf, len, shrink, VIPS_FAIL_ON_NONE, out);
	if (vips_copy(full, &header,
			"width", full->Xsize / shrink,
			"height", full->Ysize / shrink,
			NULL))
		return -1;
	if (imgedge_jpeg_pixels(header, buf, len, shrink, &pixels)) {
		g_object_unref(header);
		return -1;
	}
	g_object_unref(header);
	if (!pixels) {
		vips_error("jpegload_buffer", "%s", "the JPEG reader refused a header it accepts");
		return -1;
	}
	*out = pixels;
	jpeg_headers_reused++;
	return 0;
}

/* Shrink-on-load for every other format (WebP scaled decode, HEIF embedded thumbnails,
 * PDF/SVG rendered at the target scale). Always to exactly width x height (size=force: the
 * caller did the fitting), never rotated (the caller orients, spec §9.2). */
int
imgedge_thumbnail(const void *buf, size_t len, int width, int height, int fail_on, int pages,
	VipsImage **out)
{
	/* pages: every frame resampled to width x height, stacked; libvips sets page-height and
	 * adjusts the vertical shrink so frames never straddle. */
	return vips_thumbnail_buffer((void *) buf, len, out, width,
		"height", height,
		"size", (int) VIPS_SIZE_FORCE,
		"no_rotate", TRUE,
		"fail_on", fail_on,
		"option_string", pages ? "n=-1" : "",
		NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata */

int
imgedge_width(VipsImage *in)
{
	return vips_image_get_width(in);
}

int
imgedge_height(VipsImage *in)
{
	return vips_image_get_height(in);
}

int
imgedge_bands(VipsImage *in)
{
	return vips_image_get_bands(in);
}

int
imgedge_band_format(VipsImage *in)
{
	return (int) vips_image_get_format(in);
}

const char *
imgedge_interpretation(VipsImage *in)
{
	return vips_enum_nick(VIPS_TYPE_INTERPRETATION, vips_image_get_interpretation(in));
}

/* libvips' own test, used for processing decisions. */
int
imgedge_has_alpha(VipsImage *in)
{
	return vips_image_hasalpha(in) ? 1 : 0;
}

/* bimg's test, used for /info's hasAlpha (spec §7). */
int
imgedge_has_alpha_bimg(VipsImage *in)
{
	int bands = vips_image_get_bands(in);
	VipsInterpretation type = vips_image_get_interpretation(in);

	return (bands == 2 && type == VIPS_INTERPRETATION_B_W) ||
		(bands == 4 && type != VIPS_INTERPRETATION_CMYK) ||
		(bands == 5 && type == VIPS_INTERPRETATION_CMYK);
}

int
imgedge_has_icc(VipsImage *in)
{
	return vips_image_get_typeof(in, VIPS_META_ICC_NAME) != 0;
}

/* The EXIF IFD0 Orientation as bimg reads it: 0 when absent (spec §7 /info). */
int
imgedge_exif_orientation(VipsImage *in)
{
	const char *s;

	if (vips_image_get_typeof(in, "exif-ifd0-Orientation") != 0 &&
		!vips_image_get_string(in, "exif-ifd0-Orientation", &s))
		return atoi(s);
	return 0;
}

/* The orientation libvips will honour (1..8, 1 when absent or reset). */
int
imgedge_orientation(VipsImage *in)
{
	return vips_image_get_orientation(in);
}

/* Nickname of the loader, e.g. "jpegload_buffer"; NULL for images not loaded from a file. */
const char *
imgedge_loader(VipsImage *in)
{
	const char *s;

	if (vips_image_get_typeof(in, VIPS_META_LOADER) != 0 &&
		!vips_image_get_string(in, VIPS_META_LOADER, &s))
		return s;
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Operations */

/* Renders the image into memory: the result can be read in any order, which sequentially
 * loaded images cannot (rotations, smart crop). A no-op (new reference) for memory images. */
int
imgedge_copy_memory(VipsImage *in, VipsImage **out)
{
	VipsImage *image = vips_image_copy_memory(in);

	if (!image)
		return -1;
	*out = image;
	return 0;
}

int
imgedge_rot(VipsImage *in, VipsImage **out, int angle)
{
	VipsAngle a;

	switch (angle) {
	case 0:
		a = VIPS_ANGLE_D0;
		break;
	case 90:
		a = VIPS_ANGLE_D90;
		break;
	case 180:
		a = VIPS_ANGLE_D180;
		break;
	case 270:
		a = VIPS_ANGLE_D270;
		break;
	default:
		vips_error("imgedge_rot", "unsupported angle %d", angle);
		return -1;
	}
	return vips_rot(in, out, a, NULL);
}

/* vertical = 0: mirror left <-> right; 1: top <-> bottom. */
int
imgedge_flip(VipsImage *in, VipsImage **out, int vertical)
{
	return vips_flip(in, out,
		vertical ? VIPS_DIRECTION_VERTICAL : VIPS_DIRECTION_HORIZONTAL, NULL);
}

int
imgedge_autorot(VipsImage *in, VipsImage **out)
{
	return vips_autorot(in, out, NULL);
}

/* A copy with the orientation tag set (1 = upright: the EXIF tag written on save follows). */
int
imgedge_set_orientation(VipsImage *in, VipsImage **out, int orientation)
{
	if (vips_copy(in, out, NULL))
		return -1;
	vips_image_set_int(*out, VIPS_META_ORIENTATION, orientation);
	return 0;
}

/* Lanczos3 for reductions, bicubic for enlargements (vips_resize picks the interpolator from
 * the kernel); alpha is premultiplied around the resample so transparent pixels do not bleed
 * their colour into the edges.
 *
 * An 8-bit image with alpha is premultiplied back to 8 bits (rounded) before a reduction:
 * vips_premultiply makes floats, and libvips' box shrink and Lanczos reduce are several times
 * slower on floats than on its fixed-point uchar paths (docs/performance.md: about a quarter
 * of the resize time of a 1200x800 RGBA PNG). The error stays below half a level of the
 * composited result (PSNR > 50 dB against the float path). Enlargements keep floats: their
 * input is small. Results are rounded back to the input's format, not truncated.
 *
 * `sequential`: whether `in` streams from a sequential loader. vips_resize splits a reduction
 * into a box shrink (integer part, down to `gap` = 2 times the target) and a Lanczos reduce.
 * In libvips 8.14 that box shrink is pathologically slow on images already in memory
 * (random access: rotated, smart-cropped, pipeline steps): 2 MP by 1/4 takes 91 ms with it and
 * 9.5 ms with the reduce alone (gap 0), which is also the more exact resample. Above a factor
 * of 16 the shrink pays for itself again, so it is kept there. Since reduce.c took over the
 * 8-bit reductions below ×16, this applies to 16-bit and float images and larger factors. */
/* Premultiplication of 8-bit images, in one pass. vips_premultiply (up to 8.16 at least)
 * always returns floats, so rounding an 8-bit image back to bytes for the 8-bit resize paths
 * took three passes over the full-size image (premultiply, rint, cast): 17 % of a PNG-alpha →
 * 300 px request. This operation writes round(c·a/255) for every band but the last (alpha,
 * copied), the same bytes as those three passes: c·a/255 is never exactly halfway (255 is odd),
 * so round-half-up and rint agree. A libvips operation like any other: lazy, by regions,
 * sequential-safe. */
typedef struct _ImgedgePremultiply {
	VipsOperation parent_instance;
	VipsImage *in;
	VipsImage *out;
} ImgedgePremultiply;

typedef VipsOperationClass ImgedgePremultiplyClass;

G_DEFINE_TYPE(ImgedgePremultiply, imgedge_premultiply, VIPS_TYPE_OPERATION);

#ifdef __SSE2__
/* Four RGBA pixels at once, the same arithmetic as the loop below in 16-bit lanes:
 * c·a + 128 ≤ 65153 and t + (t >> 8) ≤ 65407 both fit. A third of the whole PNG-alpha → 300
 * request was this loop in C (16 % of the samples), which GCC does not vectorise. */
static int
premultiply_rgba_sse2(const VipsPel *p, VipsPel *q, int line)
{
	const __m128i zero = _mm_setzero_si128();
	const __m128i half = _mm_set1_epi16(128);
	const __m128i alpha_lanes = _mm_set_epi16(-1, 0, 0, 0, -1, 0, 0, 0);
	int x = 0;

	for (; x + 16 <= line; x += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *) (p + x));
		__m128i two[2] = { _mm_unpacklo_epi8(v, zero), _mm_unpackhi_epi8(v, zero) };

		for (int i = 0; i < 2; i++) {
			__m128i c = two[i];
			__m128i a = _mm_shufflehi_epi16(_mm_shufflelo_epi16(c, 0xFF), 0xFF);
			__m128i t = _mm_add_epi16(_mm_mullo_epi16(c, a), half);

			t = _mm_srli_epi16(_mm_add_epi16(t, _mm_srli_epi16(t, 8)), 8);
			two[i] = _mm_or_si128(_mm_andnot_si128(alpha_lanes, t), _mm_and_si128(alpha_lanes, c));
		}
		_mm_storeu_si128((__m128i *) (q + x), _mm_packus_epi16(two[0], two[1]));
	}
	return x;
}
#endif

static int
imgedge_premultiply_gen(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop)
{
	VipsRegion *ir = (VipsRegion *) seq;
	VipsRect *r = &out_region->valid;
	int bands = out_region->im->Bands;
	int line = r->width * bands;

	if (vips_region_prepare(ir, r))
		return -1;
	for (int y = 0; y < r->height; y++) {
		VipsPel *p = VIPS_REGION_ADDR(ir, r->left, r->top + y);
		VipsPel *q = VIPS_REGION_ADDR(out_region, r->left, r->top + y);
		int x = 0;

#ifdef __SSE2__
		if (bands == 4)
			x = premultiply_rgba_sse2(p, q, line);
#endif
		for (; x < line; x += bands) {
			unsigned alpha = p[x + bands - 1];

			for (int i = 0; i < bands - 1; i++) {
				/* round(v / 255) for v = c·a in 0..65025, exactly. */
				unsigned t = p[x + i] * alpha + 128;

				q[x + i] = (VipsPel) ((t + (t >> 8)) >> 8);
			}
			q[x + bands - 1] = (VipsPel) alpha;
		}
	}
	return 0;
}

static int
imgedge_premultiply_build(VipsObject *object)
{
	ImgedgePremultiply *premultiply = (ImgedgePremultiply *) object;
	VipsImage *in;

	g_object_set(premultiply, "out", vips_image_new(), NULL);
	if (VIPS_OBJECT_CLASS(imgedge_premultiply_parent_class)->build(object))
		return -1;
	in = premultiply->in;
	if (vips_image_pio_input(in) ||
		vips_check_uncoded("imgedge_premultiply", in) ||
		vips_check_format("imgedge_premultiply", in, VIPS_FORMAT_UCHAR) ||
		vips_check_bands_atleast("imgedge_premultiply", in, 2))
		return -1;
	if (vips_image_pipelinev(premultiply->out, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL) ||
		vips_image_generate(premultiply->out,
			vips_start_one, imgedge_premultiply_gen, vips_stop_one, in, NULL))
		return -1;
	return 0;
}

static void
imgedge_premultiply_class_init(ImgedgePremultiplyClass *class)
{
	GObjectClass *gobject_class = G_OBJECT_CLASS(class);
	VipsObjectClass *object_class = VIPS_OBJECT_CLASS(class);

	gobject_class->set_property = vips_object_set_property;
	gobject_class->get_property = vips_object_get_property;
	object_class->nickname = "imgedge_premultiply";
	object_class->description = "premultiply an 8-bit image by its alpha, rounded, as 8 bits";
	object_class->build = imgedge_premultiply_build;
	VIPS_ARG_IMAGE(class, "in", 1, "Input", "Input image",
		VIPS_ARGUMENT_REQUIRED_INPUT, G_STRUCT_OFFSET(ImgedgePremultiply, in));
	VIPS_ARG_IMAGE(class, "out", 2, "Output", "Output image",
		VIPS_ARGUMENT_REQUIRED_OUTPUT, G_STRUCT_OFFSET(ImgedgePremultiply, out));
}

static void
imgedge_premultiply_init(ImgedgePremultiply *premultiply)
{
	(void) premultiply;
}

int
imgedge_operation_out(VipsOperation *operation, VipsImage **out)
{
	int result = 0;

	if (vips_cache_operation_buildp(&operation))
		result = -1;
	else
		g_object_get(operation, "out", out, NULL);
	vips_object_unref_outputs(VIPS_OBJECT(operation));
	g_object_unref(operation);
	return result;
}

int
imgedge_premultiply_uchar(VipsImage *in, VipsImage **out)
{
	VipsOperation *operation = VIPS_OPERATION(g_object_new(imgedge_premultiply_get_type(), NULL));

	g_object_set(operation, "in", in, NULL);
	return imgedge_operation_out(operation, out);
}

int
imgedge_resize(VipsImage *in, VipsImage **out, double hscale, double vscale, int sequential)
{
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 7);
	gboolean reduce = hscale < 1.0 && vscale < 1.0;
	VipsKernel kernel = reduce ? VIPS_KERNEL_LANCZOS3 : VIPS_KERNEL_CUBIC;
	VipsBandFormat format = vips_image_get_format(in);
	gboolean alpha = vips_image_hasalpha(in);
	VipsImage *x = in;

	if (alpha && reduce && format == VIPS_FORMAT_UCHAR) {
		if (imgedge_premultiply_uchar(x, &t[0]))
			goto fail;
		x = t[0];
	}
	else if (alpha) {
		if (vips_premultiply(x, &t[0], NULL))
			goto fail;
		x = t[0];
	}
	/* 8-bit reductions below ×16 are reduce.c's, both passes: libvips 8.14's horizontal one
	 * is scalar (3 to 4 times slower) and its vertical one compiles orc code for every image;
	 * 8.16's are as fast, and one path on every libvips gives the same bytes everywhere.
	 * Vertical first: the horizontal pass then asks for each row once, where the other order
	 * made the vertical pass's overlapping windows run the horizontal one again on the rows
	 * they share (JPEG 12 MP → 800: 36 against 39 ms; docs/performance.md). */
	if (reduce && vips_image_get_format(x) == VIPS_FORMAT_UCHAR &&
		1.0 / hscale < 16.0 && 1.0 / vscale < 16.0) {
		if (imgedge_reducev_uchar(x, &t[1], 1.0 / vscale) ||
			imgedge_reduceh_uchar(t[1], &t[2], 1.0 / hscale))
			goto fail;
		x = t[2];
	}
	else {
		if (!sequential && reduce && 1.0 / VIPS_MIN(hscale, vscale) < 16.0) {
			if (vips_resize(x, &t[3], hscale, "vscale", vscale, "kernel", (int) kernel,
					"gap", 0.0, NULL))
				goto fail;
		}
		else if (vips_resize(x, &t[3], hscale, "vscale", vscale, "kernel", (int) kernel,
				NULL))
			goto fail;
		x = t[3];
	}
	if (alpha) {
		if (vips_unpremultiply(x, &t[4], NULL))
			goto fail;
		x = t[4];
		if (!vips_band_format_isfloat(format) && !vips_band_format_iscomplex(format)) {
			if (vips_rint(x, &t[5], NULL))
				goto fail;
			x = t[5];
		}
		if (vips_cast(x, &t[6], format, NULL))
			goto fail;
		x = t[6];
	}

	g_object_ref(x);
	*out = x;
	g_object_unref(base);
	return 0;

fail:
	g_object_unref(base);
	return -1;
}

int
imgedge_extract_area(VipsImage *in, VipsImage **out, int left, int top, int width, int height)
{
	return vips_extract_area(in, out, left, top, width, height, NULL);
}

/* extend is a VipsExtend value; background (n values) is used only with
 * VIPS_EXTEND_BACKGROUND. */
int
imgedge_embed(VipsImage *in, VipsImage **out, int left, int top, int width, int height,
	int extend, const double *background, int n)
{
	int result;

	if (extend == VIPS_EXTEND_BACKGROUND && background && n > 0) {
		VipsArrayDouble *bg = vips_array_double_new(background, n);

		result = vips_embed(in, out, left, top, width, height,
			"extend", extend,
			"background", bg,
			NULL);
		vips_area_unref(VIPS_AREA(bg));
		return result;
	}
	return vips_embed(in, out, left, top, width, height, "extend", extend, NULL);
}

int
imgedge_smartcrop(VipsImage *in, VipsImage **out, int width, int height)
{
	return vips_smartcrop(in, out, width, height,
		"interesting", (int) VIPS_INTERESTING_ATTENTION,
		NULL);
}

/* Nearest-neighbour pixel replication. */
int
imgedge_zoom(VipsImage *in, VipsImage **out, int xfac, int yfac)
{
	return vips_zoom(in, out, xfac, yfac, NULL);
}

/* min_ampl <= 0: libvips' default (0.2). */
int
imgedge_gaussblur(VipsImage *in, VipsImage **out, double sigma, double min_ampl)
{
	if (min_ampl > 0.0)
		return vips_gaussblur(in, out, sigma, "min_ampl", min_ampl, NULL);
	return vips_gaussblur(in, out, sigma, NULL);
}

/* r, g, b in 0..255; scaled for 16-bit images as bimg does. */
int
imgedge_flatten(VipsImage *in, VipsImage **out, double r, double g, double b)
{
	VipsInterpretation type = vips_image_get_interpretation(in);
	gboolean sixteen =
		type == VIPS_INTERPRETATION_RGB16 || type == VIPS_INTERPRETATION_GREY16;
	double scale = sixteen ? 65535.0 / 255.0 : 1.0;
	double values[3] = { r * scale, g * scale, b * scale };
	int n = vips_image_get_bands(in) <= 2 ? 1 : 3;
	VipsArrayDouble *bg;
	int result;

	/* A grey image flattens onto the grey value of the colour. */
	if (n == 1)
		values[0] = (values[0] + values[1] + values[2]) / 3.0;
	bg = vips_array_double_new(values, n);
	result = vips_flatten(in, out,
		"background", bg,
		"max_alpha", sixteen ? 65535.0 : 255.0,
		NULL);
	vips_area_unref(VIPS_AREA(bg));
	return result;
}

/* To sRGB, or B_W when bw (spec §8.3); images libvips cannot convert pass unchanged. */
int
imgedge_colourspace(VipsImage *in, VipsImage **out, int bw)
{
	if (!vips_colourspace_issupported(in))
		return vips_copy(in, out, NULL);
	return vips_colourspace(in, out,
		bw ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB, NULL);
}

/* Drops the ICC profile without transforming the pixels (bimg's noprofile). */
int
imgedge_remove_icc(VipsImage *in, VipsImage **out)
{
	if (vips_copy(in, out, NULL))
		return -1;
	vips_image_remove(*out, VIPS_META_ICC_NAME);
	return 0;
}

/* 8-bit sRGB (with alpha if present): what watermarks are drawn on. */
static int
imgedge_to_srgb8(VipsImage *in, VipsImage **out)
{
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 2);
	VipsImage *x = in;

	if (vips_colourspace_issupported(in) &&
		vips_image_get_interpretation(in) != VIPS_INTERPRETATION_sRGB) {
		if (vips_colourspace(x, &t[0], VIPS_INTERPRETATION_sRGB, NULL))
			goto fail;
		x = t[0];
	}
	if (vips_image_get_format(x) != VIPS_FORMAT_UCHAR) {
		if (vips_cast(x, &t[1], VIPS_FORMAT_UCHAR, NULL))
			goto fail;
		x = t[1];
	}
	g_object_ref(x);
	*out = x;
	g_object_unref(base);
	return 0;

fail:
	g_object_unref(base);
	return -1;
}

/* bimg's text watermark (vips_watermark): the text rendered at dpi, wrapped to width, scaled by
 * opacity, placed 100 px right/down inside a (text + margin) tile, the tile repeated over the
 * image unless !replicate, and the text colour blended in through that mask. Unlike bimg the
 * mask is always cut/padded to the image, so the size never changes. */
int
imgedge_text_watermark(VipsImage *in, VipsImage **out, const char *text, const char *font,
	int width, int dpi, int margin, double opacity, int replicate, const double *rgb)
{
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 12);
	double ones[4] = { 1, 1, 1, 1 };
	double ink[4];
	int bands, w, h;

	if (imgedge_to_srgb8(in, &t[0]))
		goto fail;
	bands = vips_image_get_bands(t[0]);
	w = vips_image_get_width(t[0]);
	h = vips_image_get_height(t[0]);
	if (bands != 3 && bands != 4) {
		vips_error("watermark", "unsupported number of bands %d", bands);
		goto fail;
	}
	ink[0] = rgb[0];
	ink[1] = rgb[1];
	ink[2] = rgb[2];
	ink[3] = 255.0;

	/* The mask. */
	if (vips_text(&t[1], text,
			"width", width,
			"dpi", dpi,
			"font", font,
			NULL) ||
		vips_linear1(t[1], &t[2], opacity, 0.0, NULL) ||
		vips_cast(t[2], &t[3], VIPS_FORMAT_UCHAR, NULL))
		goto fail;

	/* The text sits 100 px right and down inside its (text + margin) tile. When the margin
	 * is too small for any of it to show, bimg fails in vips_embed ("bad dimensions"); the
	 * watermark is simply invisible, so return the image unchanged instead. */
	if (vips_image_get_width(t[3]) + margin <= 100 ||
		vips_image_get_height(t[3]) + margin <= 100) {
		g_object_ref(t[0]);
		*out = t[0];
		g_object_unref(base);
		return 0;
	}
	if (vips_embed(t[3], &t[4], 100, 100,
			vips_image_get_width(t[3]) + margin,
			vips_image_get_height(t[3]) + margin,
			NULL))
		goto fail;

	if (replicate) {
		if (vips_replicate(t[4], &t[5],
				1 + w / vips_image_get_width(t[4]),
				1 + h / vips_image_get_height(t[4]),
				NULL) ||
			vips_crop(t[5], &t[6], 0, 0, w, h, NULL))
			goto fail;
	}
	else if (vips_embed(t[4], &t[6], 0, 0, w, h, NULL))
		goto fail;

	/* The colour to paint with, as large as the image. */
	if (vips_black(&t[7], 1, 1, NULL) ||
		vips_linear(t[7], &t[8], ones, ink, bands, NULL) ||
		vips_cast(t[8], &t[9], VIPS_FORMAT_UCHAR, NULL) ||
		vips_copy(t[9], &t[10],
			"interpretation", (int) VIPS_INTERPRETATION_sRGB,
			NULL) ||
		vips_embed(t[10], &t[11], 0, 0, w, h,
			"extend", (int) VIPS_EXTEND_COPY,
			NULL))
		goto fail;

	if (vips_ifthenelse(t[6], t[11], t[0], out, "blend", TRUE, NULL))
		goto fail;

	g_object_unref(base);
	return 0;

fail:
	g_object_unref(base);
	return -1;
}

/* An image watermark: overlay's top-left at (left, top), clipped to the base, its alpha (an
 * opaque one added when missing) multiplied by opacity, composited over the base. The result
 * has an alpha band, as in bimg. */
int
imgedge_composite(VipsImage *in, VipsImage *overlay, VipsImage **out, int left, int top,
	double opacity)
{
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 7);
	VipsImage *x;

	if (imgedge_to_srgb8(in, &t[0]) ||
		imgedge_to_srgb8(overlay, &t[1]))
		goto fail;

	x = t[1];
	if (!vips_image_hasalpha(x)) {
		if (vips_bandjoin_const1(x, &t[2], 255.0, NULL))
			goto fail;
		x = t[2];
	}
	if (opacity < 1.0) {
		double a[4] = { 1.0, 1.0, 1.0, opacity };
		double b[4] = { 0.0, 0.0, 0.0, 0.0 };

		if (vips_image_get_bands(x) != 4) {
			vips_error("watermark", "unsupported number of bands %d",
				vips_image_get_bands(x));
			goto fail;
		}
		if (vips_linear(x, &t[3], a, b, 4, NULL) ||
			vips_cast(t[3], &t[4], VIPS_FORMAT_UCHAR, NULL))
			goto fail;
		x = t[4];
	}

	if (vips_composite2(t[0], x, &t[5], VIPS_BLEND_MODE_OVER,
			"x", left,
			"y", top,
			NULL))
		goto fail;
	x = t[5];
	if (vips_image_get_format(x) != VIPS_FORMAT_UCHAR) {
		if (vips_cast(x, &t[6], VIPS_FORMAT_UCHAR, NULL))
			goto fail;
		x = t[6];
	}

	g_object_ref(x);
	*out = x;
	g_object_unref(base);
	return 0;

fail:
	g_object_unref(base);
	return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Saving (bimg v1.1.7's settings, spec §8.3) */

/* Through jpegwrite.c where it applies (same bytes, no libvips threads). */
int
imgedge_save_jpeg(VipsImage *in, void **buf, size_t *len, int quality, int interlace, int strip)
{
	if (imgedge_jpeg_write_applies(in, quality, interlace))
		return imgedge_jpeg_write(in, buf, len, quality, strip);
	return imgedge_save_jpeg_libvips(in, buf, len, quality, interlace, strip);
}

int
imgedge_save_jpeg_libvips(VipsImage *in, void **buf, size_t *len, int quality, int interlace,
	int strip)
{
	return vips_jpegsave_buffer(in, buf, len,
		"Q", quality,
		"optimize_coding", TRUE,
		"interlace", IMGEDGE_BOOL(interlace),
		IMGEDGE_STRIP(strip),
		NULL);
}

int
imgedge_each_row(VipsImage *in, void (*row)(int y, const VipsPel *pixels, void *data), void *data)
{
	/* libvips' fat strip: regions (and the memory they hold) are the sizes its savers ask. */
	enum { STRIP = 16 };
	VipsRegion *region = vips_region_new(in);

	/* vips_region_new sets its own error. */
	if (!region)
		return -1;
	for (int top = 0; top < in->Ysize; top += STRIP) {
		VipsRect strip = { 0, top, in->Xsize, VIPS_MIN(STRIP, in->Ysize - top) };

		if (vips_region_prepare(region, &strip)) {
			g_object_unref(region);
			return -1;
		}
		for (int y = top; y < top + strip.height; y++)
			row(y, VIPS_REGION_ADDR(region, 0, y), data);
	}
	g_object_unref(region);
	return 0;
}

int
imgedge_save_png(VipsImage *in, void **buf, size_t *len, int compression, int zlib_level,
	int interlace, int palette, int quality, int effort, int strip)
{
	if (imgedge_png_write_applies(in, compression, interlace, palette))
		return imgedge_png_write(in, buf, len, compression, strip);
	return imgedge_save_png_libvips(in, buf, len, zlib_level, interlace, palette, quality,
		effort, strip);
}

int
imgedge_save_png_libvips(VipsImage *in, void **buf, size_t *len, int compression,
	int interlace, int palette, int quality, int effort, int strip)
{
	return vips_pngsave_buffer(in, buf, len,
		"compression", compression,
		"interlace", IMGEDGE_BOOL(interlace),
		"filter", (int) VIPS_FOREIGN_PNG_FILTER_ALL,
		"palette", IMGEDGE_BOOL(palette),
		"Q", quality,
		"effort", effort,
		IMGEDGE_STRIP(strip),
		NULL);
}

/* Through webpwrite.c where it applies (same bytes, no libvips threads). */
int
imgedge_save_webp(VipsImage *in, void **buf, size_t *len, int quality, int lossless, int strip)
{
	if (imgedge_webp_write_applies(in, quality, lossless))
		return imgedge_webp_write(in, buf, len, quality, strip);
	if (imgedge_save_webp_libvips(in, buf, len, quality, lossless, strip))
		return -1;
	return strip ? imgedge_webp_strip(buf, len) : 0;
}

int
imgedge_save_webp_libvips(VipsImage *in, void **buf, size_t *len, int quality, int lossless,
	int strip)
{
	return vips_webpsave_buffer(in, buf, len,
		"Q", quality,
		"lossless", IMGEDGE_BOOL(lossless),
		IMGEDGE_STRIP(strip),
		NULL);
}

int
imgedge_save_tiff(VipsImage *in, void **buf, size_t *len, int strip)
{
	return vips_tiffsave_buffer(in, buf, len, IMGEDGE_STRIP(strip), NULL);
}

/* effort 3 instead of libvips' 7: palette search dominates GIF encoding (about 5x faster
 * on a 50-frame animation for a similar size), and animations multiply it by the frames. */
int
imgedge_save_gif(VipsImage *in, void **buf, size_t *len, int strip)
{
	return vips_gifsave_buffer(in, buf, len, "effort", 3, IMGEDGE_STRIP(strip), NULL);
}

/* HEIC (HEVC) or AVIF (AV1), 8 bits per sample. */
int
imgedge_save_heif(VipsImage *in, void **buf, size_t *len, int quality, int av1, int lossless,
	int strip)
{
	return vips_heifsave_buffer(in, buf, len,
		"Q", quality,
		"bitdepth", 8,
		"lossless", IMGEDGE_BOOL(lossless),
		"compression", (int) (av1 ? VIPS_FOREIGN_HEIF_COMPRESSION_AV1
					  : VIPS_FOREIGN_HEIF_COMPRESSION_HEVC),
		IMGEDGE_STRIP(strip),
		NULL);
}

/* JPEG XL exists only in some libvips builds: look the saver up by name at run time rather
 * than calling vips_jxlsave_buffer, which may not be linkable. */
int
imgedge_save_jxl(VipsImage *in, void **buf, size_t *len, int quality, int lossless, int strip)
{
	VipsBlob *blob = NULL;

	if (!imgedge_operation_exists("jxlsave_buffer")) {
		vips_error("jxlsave_buffer", "%s", "JPEG XL support is not compiled into libvips");
		return -1;
	}
	if (vips_call("jxlsave_buffer", in, &blob,
			"Q", quality,
			"lossless", IMGEDGE_BOOL(lossless),
			IMGEDGE_STRIP(strip),
			NULL))
		return -1;

	/* The blob owns its memory: copy it into a g_malloc'd buffer like the other savers. */
	{
		VipsArea *area = VIPS_AREA(blob);

		*len = area->length;
		*buf = g_malloc(area->length > 0 ? area->length : 1);
		memcpy(*buf, area->data, area->length);
		vips_area_unref(area);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Test helpers */

/* band 0 = 255 x / width, band 1 = 255 y / height, band 2 = 64, band 3 = 255 (opaque alpha).
 * 1 band: band 0 only (B_W); 2 bands: band 0 + alpha (B_W). */
int
imgedge_test_image(int width, int height, int bands, VipsImage **out)
{
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 6);
	double a[2] = { 255.0 / width, 255.0 / height };
	double b[2] = { 0.0, 0.0 };
	VipsImage *x;

	if (vips_xyz(&t[0], width, height, NULL) ||
		vips_linear(t[0], &t[1], a, b, 2, NULL))
		goto fail;

	switch (bands) {
	case 1:
		if (vips_extract_band(t[1], &t[2], 0, NULL))
			goto fail;
		break;
	case 2:
		if (vips_extract_band(t[1], &t[3], 0, NULL) ||
			vips_bandjoin_const1(t[3], &t[2], 255.0, NULL))
			goto fail;
		break;
	case 3:
		if (vips_bandjoin_const1(t[1], &t[2], 64.0, NULL))
			goto fail;
		break;
	case 4: {
		double c[2] = { 64.0, 255.0 };

		if (vips_bandjoin_const(t[1], &t[2], c, 2, NULL))
			goto fail;
		break;
	}
	default:
		vips_error("imgedge_test_image", "bad band count %d", bands);
		goto fail;
	}

	if (vips_cast(t[2], &t[4], VIPS_FORMAT_UCHAR, NULL) ||
		vips_copy(t[4], &t[5],
			"interpretation",
			(int) (bands <= 2 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB),
			NULL))
		goto fail;
	x = vips_image_copy_memory(t[5]);
	if (!x)
		goto fail;

	*out = x;
	g_object_unref(base);
	return 0;

fail:
	g_object_unref(base);
	return -1;
}

/* Raw 8-bit pixels in (copied) and out (g_malloc'd, caller frees): for benchmarks and quality
 * metrics, which generate their inputs and compare outputs pixel by pixel. */
int
imgedge_from_pixels(const void *data, size_t len, int width, int height, int bands,
	VipsImage **out)
{
	VipsImage *image;

	if (len != (size_t) width * height * bands) {
		vips_error("imgedge_from_pixels", "%zu bytes for %dx%dx%d", len, width, height,
			bands);
		return -1;
	}
	image = vips_image_new_from_memory_copy(data, len, width, height, bands,
		VIPS_FORMAT_UCHAR);
	if (!image)
		return -1;
	image->Type = bands <= 2 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
	*out = image;
	return 0;
}

int
imgedge_to_pixels(VipsImage *in, void **buf, size_t *len)
{
	VipsImage *x = NULL;

	if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR) {
		if (vips_cast(in, &x, VIPS_FORMAT_UCHAR, NULL))
			return -1;
	}
	else {
		g_object_ref(in);
		x = in;
	}
	*buf = vips_image_write_to_memory(x, len);
	g_object_unref(x);
	return *buf ? 0 : -1;
}

static void *
fields_add(VipsImage *image, const char *name, GValue *value, void *a)
{
	GString *text = (GString *) a;
	char *s;

	(void) value;
	if (vips_image_get_as_string(image, name, &s))
		return image;
	g_string_append_printf(text, "%s=%s\n", name, s);
	g_free(s);
	return NULL;
}

/* Every field of the header, one "name=value" line each (g_free it); NULL on error. */
char *
imgedge_fields(VipsImage *in)
{
	GString *text = g_string_new(NULL);

	if (vips_image_map(in, fields_add, text)) {
		g_string_free(text, TRUE);
		return NULL;
	}
	return g_string_free(text, FALSE);
}

int
imgedge_getpoint(VipsImage *in, int x, int y, double *values, int max)
{
	double *vector;
	int n, i;

	if (vips_getpoint(in, &vector, &n, x, y, NULL))
		return -1;
	for (i = 0; i < n && i < max; i++)
		values[i] = vector[i];
	g_free(vector);
	return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Animations (GIF, WebP): every frame stacked vertically in one image ("toilet roll"), the
 * frame height in the `page-height` metadata, the frame durations in `delay` (ms, one per
 * frame) and the repeat count in `loop` (0 = forever). gifsave (cgif) and webpsave write
 * such an image as an animation. */

/* Frames in the file (1 when the loader does not say), from the header alone. */
int
imgedge_n_pages(VipsImage *in)
{
	return vips_image_get_n_pages(in);
}

/* The frame height: `page-height` when it is set and divides the height, else the height. */
int
imgedge_page_height(VipsImage *in)
{
	return vips_image_get_page_height(in);
}

/* Every frame of a GIF or WebP (n = -1), stacked. Only for loaders that have the `n` option. */
/* frames[0..n) stacked top to bottom as a balanced tree of two-image joins. libvips 8.14's
 * vips_arrayjoin keeps a region on every input and scans them all for each request: saving
 * 1000 joined frames of 100x60 took 9.5 s more than saving the same stack from memory, the
 * tree 2 s more. Returns a new reference in *out. */
static int
imgedge_join_range(VipsImage **frames, int n, VipsImage **out)
{
	VipsImage *top, *bottom;
	int half, result;

	if (n == 1) {
		g_object_ref(frames[0]);
		*out = frames[0];
		return 0;
	}
	half = n / 2;
	if (imgedge_join_range(frames, half, &top))
		return -1;
	if (imgedge_join_range(frames + half, n - half, &bottom)) {
		g_object_unref(top);
		return -1;
	}
	result = vips_join(top, bottom, out, VIPS_DIRECTION_VERTICAL, NULL);
	g_object_unref(top);
	g_object_unref(bottom);
	return result;
}

/* The frames (all the same size) stacked top to bottom, with page-height and n-pages set.
 * Other metadata comes from frames[0]. */
int
imgedge_join_frames(VipsImage **frames, int n, VipsImage **out)
{
	VipsImage *joined;
	int i;

	if (n < 1) {
		vips_error("imgedge_join_frames", "%s", "no frames");
		return -1;
	}
	for (i = 1; i < n; i++)
		if (vips_image_get_width(frames[i]) != vips_image_get_width(frames[0]) ||
			vips_image_get_height(frames[i]) != vips_image_get_height(frames[0])) {
			vips_error("imgedge_join_frames", "frame %d is %dx%d, frame 0 %dx%d", i,
				vips_image_get_width(frames[i]), vips_image_get_height(frames[i]),
				vips_image_get_width(frames[0]), vips_image_get_height(frames[0]));
			return -1;
		}
	if (imgedge_join_range(frames, n, &joined))
		return -1;
	if (vips_copy(joined, out, NULL)) {
		g_object_unref(joined);
		return -1;
	}
	g_object_unref(joined);
	vips_image_set_int(*out, VIPS_META_PAGE_HEIGHT, vips_image_get_height(frames[0]));
	vips_image_set_int(*out, VIPS_META_N_PAGES, n);
	return 0;
}

/* A copy whose `page-height` is page_height (the height: a still image, whatever an earlier
 * operation left in the metadata). */
int
imgedge_set_page_height(VipsImage *in, VipsImage **out, int page_height)
{
	if (vips_copy(in, out, NULL))
		return -1;
	vips_image_set_int(*out, VIPS_META_PAGE_HEIGHT, page_height);
	if (page_height == vips_image_get_height(in))
		vips_image_set_int(*out, VIPS_META_N_PAGES, 1);
	return 0;
}

/* A copy with the animation timing set: `delay` (n_delays values, ms; skipped when 0) and
 * `loop` (skipped when negative). The legacy `gif-delay` (centiseconds) follows delay[0]. */
int
imgedge_set_animation(VipsImage *in, VipsImage **out, const int *delays, int n_delays,
	int loop)
{
	if (vips_copy(in, out, NULL))
		return -1;
	if (delays && n_delays > 0) {
		vips_image_set_array_int(*out, "delay", delays, n_delays);
		vips_image_set_int(*out, "gif-delay", VIPS_RINT(delays[0] / 10.0));
	}
	if (loop >= 0) {
		vips_image_set_int(*out, "loop", loop);
		vips_image_set_int(*out, "gif-loop", loop);
	}
	return 0;
}

/* Copies up to max frame delays (ms) into delays; returns how many the image has (0: none). */
int
imgedge_get_delays(VipsImage *in, int *delays, int max)
{
	int *array;
	int n, i;

	if (vips_image_get_typeof(in, "delay") == 0 ||
		vips_image_get_array_int(in, "delay", &array, &n))
		return 0;
	for (i = 0; i < n && i < max; i++)
		delays[i] = array[i];
	return n;
}

/* The repeat count (0 = forever); -1 when the image has none. */
int
imgedge_get_loop(VipsImage *in)
{
	int loop;

	if (vips_image_get_typeof(in, "loop") == 0 || vips_image_get_int(in, "loop", &loop))
		return -1;
	return loop;
}
