/* JPEG written in the calling thread: the bytes of libvips' jpegsave, without its threads.
 *
 * Why: libvips' savers pull the image through vips_sink_disc, where a worker thread computes
 * each 16-row strip and a write-behind thread compresses it, so a 300 px thumbnail is some 40
 * thread hand-offs between three threads; in the server that was 4 % of the CPU of a
 * 2 MP JPEG → 300 request (docs/performance.md, change 14). The request already runs on a
 * worker of its own (the blocking pool): here the same strips, in the same order, are
 * computed and compressed by that thread.
 *
 * What is written is what libvips' write_vips writes (8.14 to 8.18 tested; the tests compare
 * the bytes): libjpeg's defaults, optimised Huffman tables, quality Q, 4:4:4 from Q 90, no JFIF
 * marker (libvips built with libexif leaves resolution to EXIF), then the metadata left on
 * the image libvips' saver would write (saveready.c: EXIF rebuilt from the image's fields,
 * nothing when stripped) — EXIF, XMP, IPTC and the ICC profile (where it fits the image),
 * each as libvips marks and sizes them. Only for images the saver would not convert (8-bit
 * sRGB or one band, uncoded) and baseline output; anything else goes to libvips.
 */

#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#define VIPS_DISABLE_COMPAT
#include <vips/vips.h>

#include "jpegerror.h"
#include "shim.h"

/* Rows computed and compressed at a time: libvips' fat strip, so regions (and the memory
 * they hold) are the sizes libvips' saver asks for. */
#define STRIP 16

/* libvips' limits (vips2jpeg.c): a marker holds 65 533 bytes after its length. */
#define MAX_BYTES_IN_MARKER 65533
#define ICC_MARKER (JPEG_APP0 + 2)
#define ICC_OVERHEAD_LEN 14
#define MAX_ICC_BYTES_IN_MARKER (MAX_BYTES_IN_MARKER - ICC_OVERHEAD_LEN)
#define XML_URL "http://ns.adobe.com/xap/1.0/"
#define MAX_XMP_BYTES 60000

/* How many saves took this path in the calling thread, for the tests that say it is taken
 * (per thread, so that tests running beside them do not count). */
static __thread int used;

int
imgedge_jpeg_write_used(void)
{
	return used;
}

/* Out-of-range qualities are left to libvips, for its error. */
gboolean
imgedge_jpeg_write_applies(VipsImage *in, int quality, int interlace)
{
	return !interlace && quality >= 1 && quality <= 100 &&
		in->Coding == VIPS_CODING_NONE &&
		in->BandFmt == VIPS_FORMAT_UCHAR &&
		((in->Bands == 3 && in->Type == VIPS_INTERPRETATION_sRGB) || in->Bands == 1) &&
		imgedge_save_ready_applies();
}

/* The compressed bytes, in one g_malloc'd block that doubles as it fills. */
typedef struct {
	struct jpeg_destination_mgr pub;
	JOCTET *buf;
	size_t size;
} Dest;

typedef struct {
	struct jpeg_compress_struct cinfo;
	JpegError error;
	Dest dest;
	VipsImage *image;
	VipsRegion *region;
	gboolean started; /* cinfo created */
} Write;

static void
dest_init(j_compress_ptr cinfo)
{
	Dest *dest = (Dest *) cinfo->dest;

	dest->size = 16384;
	dest->buf = g_malloc(dest->size);
	dest->pub.next_output_byte = dest->buf;
	dest->pub.free_in_buffer = dest->size;
}

static boolean
dest_empty(j_compress_ptr cinfo)
{
	Dest *dest = (Dest *) cinfo->dest;
	size_t filled = dest->size;

	/* libjpeg calls this only with the buffer full. */
	dest->size *= 2;
	dest->buf = g_realloc(dest->buf, dest->size);
	dest->pub.next_output_byte = dest->buf + filled;
	dest->pub.free_in_buffer = dest->size - filled;
	return TRUE;
}

static void
dest_term(j_compress_ptr cinfo)
{
	Dest *dest = (Dest *) cinfo->dest;

	dest->size -= dest->pub.free_in_buffer;
}

/* A blob field as one marker; libvips skips (with a warning) what does not fit in one. */
static void
write_blob(Write *write, const char *field, int marker)
{
	const void *data;
	size_t length;

	if (!vips_image_get_typeof(write->image, field) ||
		vips_image_get_blob(write->image, field, &data, &length))
		return;
	if (length > MAX_BYTES_IN_MARKER)
		g_warning("field \"%s\" is too large for a single JPEG marker, ignoring", field);
	else
		jpeg_write_marker(&write->cinfo, marker, data, length);
}

/* XMP: Adobe's namespace URL, a NUL, then the packet; libvips skips packets over 60 000 bytes
 * (extended XMP is not written). */
static void
write_xmp(Write *write)
{
	const void *data;
	size_t length;
	size_t url = strlen(XML_URL) + 1;
	JOCTET *marker;

	if (!vips_image_get_typeof(write->image, VIPS_META_XMP_NAME) ||
		vips_image_get_blob(write->image, VIPS_META_XMP_NAME, &data, &length))
		return;
	if (length > MAX_XMP_BYTES) {
		g_warning("%s", "VipsJpeg: large XMP not saved");
		return;
	}
	marker = g_malloc(url + length);
	memcpy(marker, XML_URL, url);
	memcpy(marker + url, data, length);
	jpeg_write_marker(&write->cinfo, JPEG_APP0 + 1, marker, url + length);
	g_free(marker);
}

/* Whether libvips' JPEG saver itself drops a profile that does not fit the image: 8.14's
 * does; from 8.15 on the saver base class has already dropped it (saveready.c), so asking lcms
 * again would only repeat the work. */
#define DROP_UNFIT_ICC (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION == 14)

/* ICC: split over as many APP2 markers as it needs, each "ICC_PROFILE\0", its number and the
 * count (the ICC specification's embedding, as libvips and lcms write it). A profile that does
 * not fit the image (an RGB one on a grey image, or not a profile) is dropped, as libvips'
 * saver drops it before writing. */
static void
write_icc(Write *write)
{
	const JOCTET *data;
	size_t length;
	int count, n = 1;

	if (!vips_image_get_typeof(write->image, VIPS_META_ICC_NAME) ||
		vips_image_get_blob(write->image, VIPS_META_ICC_NAME, (const void **) &data,
			&length) ||
		length == 0 ||
		(DROP_UNFIT_ICC && !vips_icc_is_compatible_profile(write->image, data, length)))
		return;
	count = (int) ((length + MAX_ICC_BYTES_IN_MARKER - 1) / MAX_ICC_BYTES_IN_MARKER);
	while (length > 0) {
		unsigned int part = length > MAX_ICC_BYTES_IN_MARKER ? MAX_ICC_BYTES_IN_MARKER :
															 (unsigned int) length;
		static const char id[] = "ICC_PROFILE";

		jpeg_write_m_header(&write->cinfo, ICC_MARKER, part + ICC_OVERHEAD_LEN);
		for (size_t i = 0; i < sizeof(id); i++)
			jpeg_write_m_byte(&write->cinfo, id[i]);
		jpeg_write_m_byte(&write->cinfo, n++);
		jpeg_write_m_byte(&write->cinfo, count);
		for (unsigned int i = 0; i < part; i++)
			jpeg_write_m_byte(&write->cinfo, data[i]);
		data += part;
		length -= part;
	}
}

static void
write_free(Write *write)
{
	if (write->started)
		jpeg_destroy_compress(&write->cinfo);
	g_free(write->dest.buf);
	VIPS_UNREF(write->region);
	VIPS_UNREF(write->image);
	g_free(write);
}

/* Everything after the image and region exist; -1 with vips_error set. The Write is reached
 * through a pointer that does not change after setjmp, so its fields are what they were when
 * libjpeg jumped. */
static int
write_compress(Write *write, int quality)
{
	struct jpeg_compress_struct *cinfo = &write->cinfo;
	VipsImage *image = write->image;
	JSAMPROW rows[STRIP];

	cinfo->err = jpeg_error_init(&write->error);
	if (setjmp(write->error.jmp))
		return -1;
	jpeg_create_compress(cinfo);
	write->started = TRUE;
	write->dest.pub.init_destination = dest_init;
	write->dest.pub.empty_output_buffer = dest_empty;
	write->dest.pub.term_destination = dest_term;
	cinfo->dest = &write->dest.pub;

	cinfo->image_width = image->Xsize;
	cinfo->image_height = image->Ysize;
	cinfo->input_components = image->Bands;
	cinfo->in_color_space = image->Bands == 3 ? JCS_RGB : JCS_GRAYSCALE;
	jpeg_set_defaults(cinfo);
	cinfo->optimize_coding = TRUE;
	jpeg_set_quality(cinfo, quality, TRUE);
	if (quality >= 90)
		for (int i = 0; i < image->Bands; i++)
			cinfo->comp_info[i].h_samp_factor = cinfo->comp_info[i].v_samp_factor = 1;
	cinfo->write_JFIF_header = FALSE;
	jpeg_start_compress(cinfo, TRUE);

	write_blob(write, VIPS_META_EXIF_NAME, JPEG_APP0 + 1);
	write_xmp(write);
	write_blob(write, VIPS_META_IPTC_NAME, JPEG_APP0 + 13);
	write_icc(write);

	for (int top = 0; top < image->Ysize; top += STRIP) {
		VipsRect strip_rect = { 0, top, image->Xsize, VIPS_MIN(STRIP, image->Ysize - top) };

		if (vips_region_prepare(write->region, &strip_rect))
			return -1;
		for (int i = 0; i < strip_rect.height; i++)
			rows[i] = VIPS_REGION_ADDR(write->region, 0, top + i);
		jpeg_write_scanlines(cinfo, rows, strip_rect.height);
	}
	jpeg_finish_compress(cinfo);
	return 0;
}

int
imgedge_jpeg_write(VipsImage *in, void **buf, size_t *len, int quality, int strip)
{
	Write *write;

	if (!imgedge_jpeg_write_applies(in, quality, FALSE)) {
		vips_error("jpegwrite", "%s", "image or quality needs libvips' saver");
		return -1;
	}
	write = g_new0(Write, 1);
	if (imgedge_save_ready(in, strip, &write->image) || vips_image_pio_input(write->image) ||
		!(write->region = vips_region_new(write->image)) ||
		write_compress(write, quality)) {
		write_free(write);
		return -1;
	}
	*buf = write->dest.buf;
	*len = write->dest.size;
	write->dest.buf = NULL;
	write_free(write);
	used++;
	return 0;
}
