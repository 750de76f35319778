/* The pixels of a JPEG that libvips has already opened, decoded from memory.
 *
 * Why: libvips (up to 8.16 at least) feeds libjpeg through its own source manager in 4 KB
 * reads. libjpeg-turbo's fast Huffman decoder only runs while a whole MCU's worst case
 * (512 bytes per block: 3 KB for 4:2:0) is buffered, so three quarters of every 4 KB chunk went
 * through the slow, byte-checking decoder. Here libjpeg reads the image bytes in place
 * (jpeg_mem_src): one buffer, the fast path throughout.
 *
 * Only the pixels: the header, metadata (EXIF, ICC, XMP, resolution), checks and limits stay
 * libvips' (`imgedge_load_jpeg` opens the image with vips_jpegload_buffer first and hands this
 * its header). Only for what libjpeg decodes to exactly what libvips would — 8-bit, 1 or 3
 * components (grey, YCbCr/RGB), not progressive, errors failing the load, warnings ignored (the
 * `fail_on` "none" that imgedge loads with) — with libvips' decoder settings (libjpeg's
 * defaults and the DCT scale), so the pixels are the same bytes (tested). Everything else, and
 * progressive files (whose scan limit libvips enforces), goes through libvips.
 */

#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
/* libvips >= 8.15 includes its vips7 compatibility header from vips.h, whose
 * `#define error_exit vips_error_exit` would rename libjpeg's error_exit field below. */
#define VIPS_DISABLE_COMPAT
#include <vips/vips.h>

#include "jpegerror.h"
#include "shim.h"

typedef struct {
	const void *buf;
	size_t len;
	int shrink;
	int bands;
	VipsImage *header; /* libvips' load, referenced: the output's fields come from it */
	gboolean started;  /* cinfo created */
	gboolean failed;   /* libjpeg longjmp'd out: its state is undefined, never call it again */
	JSAMPLE *row;      /* a whole decoded row, where libjpeg's is wider than the image */
	int next_row;     /* the row libjpeg gives next */
	struct jpeg_decompress_struct cinfo;
	JpegError error;
} JpegPixels;

static void
jpeg_pixels_close(VipsImage *image, JpegPixels *pixels)
{
	(void) image;
	if (pixels->started)
		jpeg_destroy_decompress(&pixels->cinfo);
	VIPS_UNREF(pixels->header);
	g_free(pixels->row);
	g_free(pixels);
}

/* Creates the decompressor and starts it. -1 on error (vips_error set). */
static int
jpeg_pixels_start(JpegPixels *pixels, VipsImage *out)
{
	struct jpeg_decompress_struct *cinfo = &pixels->cinfo;

	cinfo->err = jpeg_error_init(&pixels->error);
	if (setjmp(pixels->error.jmp)) {
		return -1;
	}
	jpeg_create_decompress(cinfo);
	pixels->started = TRUE;
	jpeg_mem_src(cinfo, (const unsigned char *) pixels->buf, (unsigned long) pixels->len);
	jpeg_read_header(cinfo, TRUE);
	if (jpeg_has_multiple_scans(cinfo)) {
		vips_error("VipsJpeg", "%s", "progressive image on the baseline path");
		return -1;
	}
	cinfo->scale_num = 1;
	cinfo->scale_denom = pixels->shrink;
	cinfo->out_color_space = pixels->bands == 1 ? JCS_GRAYSCALE : JCS_RGB;
	jpeg_start_decompress(cinfo);
	/* libjpeg rounds a scaled size up, libvips down (333 px at 1/2: 167 and 166) and drops
	 * the last column and row: so do we. */
	if ((int) cinfo->output_width < out->Xsize || (int) cinfo->output_height < out->Ysize ||
		cinfo->output_components != pixels->bands) {
		vips_error("VipsJpeg", "%s", "decoder and header disagree on the image size");
		return -1;
	}
	if ((int) cinfo->output_width > out->Xsize)
		pixels->row = g_new(JSAMPLE, (size_t) cinfo->output_width * pixels->bands);
	return 0;
}

static int
jpeg_pixels_gen(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop)
{
	JpegPixels *pixels = (JpegPixels *) a;
	VipsRect *r = &out_region->valid;
	struct jpeg_decompress_struct *cinfo = &pixels->cinfo;

	(void) seq;
	(void) b;
	/* vips_sequential in front of this image asks for whole rows, in order, one thread at a
	 * time; anything else is a bug upstream, not something to decode around. */
	if (r->left != 0 || r->width != out_region->im->Xsize || r->top != pixels->next_row) {
		vips_error("VipsJpeg", "out of order read at line %d", r->top);
		return -1;
	}
	if (pixels->failed) {
		vips_error("VipsJpeg", "%s", "decoding failed earlier");
		return -1;
	}
	if (!pixels->started && jpeg_pixels_start(pixels, out_region->im)) {
		pixels->failed = TRUE;
		return -1;
	}
	if (setjmp(pixels->error.jmp)) {
		pixels->failed = TRUE;
		return -1;
	}
	for (int y = 0; y < r->height; y++) {
		VipsPel *q = VIPS_REGION_ADDR(out_region, 0, r->top + y);
		JSAMPROW row = pixels->row ? pixels->row : q;

		if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
			vips_error("VipsJpeg", "%s", "no more rows");
			pixels->failed = TRUE;
			return -1;
		}
		if (pixels->row)
			memcpy(q, pixels->row, VIPS_REGION_SIZEOF_LINE(out_region));
		pixels->next_row++;
	}
	return 0;
}

/* How many loads took this path, for the tests that say it is taken. */
static int used;

int
imgedge_jpeg_pixels_used(void)
{
	return g_atomic_int_get(&used);
}

/* Whether the pixels of `header` (a libvips JPEG load) are decoded here: baseline, 8-bit,
 * RGB or grey. */
gboolean
imgedge_jpeg_pixels_applies(VipsImage *header)
{
	int multiscan = 1;

	if (vips_image_get_typeof(header, "jpeg-multiscan") &&
		vips_image_get_int(header, "jpeg-multiscan", &multiscan))
		return FALSE;
	return !multiscan && vips_image_get_format(header) == VIPS_FORMAT_UCHAR &&
		vips_image_get_coding(header) == VIPS_CODING_NONE &&
		((header->Bands == 3 && header->Type == VIPS_INTERPRETATION_sRGB) ||
			(header->Bands == 1 && header->Type == VIPS_INTERPRETATION_B_W));
}

/* An image like `header` (a libvips JPEG load not yet decoded) whose pixels are decoded here
 * from buf (which must outlive it), or NULL with no error set when this decoder does not apply
 * to it. */
int
imgedge_jpeg_pixels(VipsImage *header, const void *buf, size_t len, int shrink,
	VipsImage **out)
{
	VipsImage *raw;
	JpegPixels *pixels;

	*out = NULL;
	if (!imgedge_jpeg_pixels_applies(header))
		return 0;

	raw = vips_image_new();
	if (vips_image_pipelinev(raw, VIPS_DEMAND_STYLE_FATSTRIP, header, NULL)) {
		g_object_unref(raw);
		return -1;
	}
	pixels = g_new0(JpegPixels, 1);
	pixels->buf = buf;
	pixels->len = len;
	pixels->shrink = shrink;
	pixels->bands = header->Bands;
	pixels->header = header;
	g_object_ref(header);
	g_signal_connect(raw, "close", G_CALLBACK(jpeg_pixels_close), pixels);
	if (vips_image_generate(raw, NULL, jpeg_pixels_gen, NULL, pixels, NULL) ||
		vips_sequential(raw, out, "tile_height", 8, NULL)) {
		g_object_unref(raw);
		return -1;
	}
	g_object_unref(raw);
	g_atomic_int_inc(&used);
	return 0;
}
