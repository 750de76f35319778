/* Lossy WebP written in the calling thread: the bytes of libvips' webpsave, without its
 * threads.
 *
 * Why: as for JPEG (jpegwrite.c), libvips' saver pulls the image through vips_sink_disc, a
 * worker thread computing each strip and handing it back, and copies the strips into a frame
 * for libwebp. Here the calling thread (already a worker of its own) computes the same strips
 * into the same frame; the encoding is libwebp's, with libvips' configuration.
 *
 * What is written is what libvips' webpsave writes with its defaults and Q (8.14 to 8.18
 * tested; the tests compare the bytes): WebPConfigPreset(DEFAULT, Q), method 4 (its
 * `effort`), alpha quality 100, the frame imported as RGB or RGBA, then the bitstream
 * reassembled by libwebpmux with the metadata left on the image libvips' saver would write
 * (saveready.c: EXIF rebuilt from the image's fields, nothing when stripped) as ICC, EXIF and
 * XMP chunks. Only for single-frame 8-bit sRGB images of 3 or 4 bands, lossy; anything else
 * (lossless, animations, other colourspaces) goes to libvips.
 */

#include <string.h>

#define VIPS_DISABLE_COMPAT
#include <vips/vips.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "shim.h"

/* libvips' (and libwebp's) limit on either side. */
#define WEBP_MAX 16383

static __thread int used;

int
imgedge_webp_write_used(void)
{
	return used;
}

/* Out-of-range qualities are left to libvips, for its error. */
gboolean
imgedge_webp_write_applies(VipsImage *in, int quality, int lossless)
{
	return !lossless &&
		quality >= 0 && quality <= 100 &&
		in->Coding == VIPS_CODING_NONE && in->BandFmt == VIPS_FORMAT_UCHAR &&
		(in->Bands == 3 || in->Bands == 4) && in->Type == VIPS_INTERPRETATION_sRGB &&
		in->Xsize <= WEBP_MAX && in->Ysize <= WEBP_MAX &&
		vips_image_get_page_height(in) == in->Ysize && imgedge_save_ready_applies();
}

typedef struct {
	size_t row; /* bytes per row */
	VipsPel *frame;
} Frame;

static void
copy_row(int y, const VipsPel *pixels, void *data)
{
	Frame *f = data;

	memcpy(f->frame + f->row * y, pixels, f->row);
}

/* The image's pixels, top to bottom, in one buffer: what libvips' sink hands libwebp. */
static VipsPel *
frame_of(VipsImage *image)
{
	size_t row = (size_t) image->Xsize * image->Bands;
	Frame f = { row, g_try_malloc(row * image->Ysize) };

	if (!f.frame) {
		vips_error("webpwrite", "failed to allocate %zu bytes", row * image->Ysize);
		return NULL;
	}
	if (imgedge_each_row(image, copy_row, &f)) {
		g_free(f.frame);
		return NULL;
	}
	return f.frame;
}

/* The encoded bitstream in `bitstream`; -1 with vips_error set. */
static int
encode(VipsImage *image, const VipsPel *frame, int quality, WebPMemoryWriter *bitstream)
{
	WebPConfig config;
	WebPPicture picture;
	int stride = image->Xsize * image->Bands;
	int ok;

	if (!WebPConfigPreset(&config, WEBP_PRESET_DEFAULT, quality)) {
		vips_error("webpwrite", "%s", "config version error");
		return -1;
	}
	config.lossless = 0;
	config.alpha_quality = 100;
	config.method = 4;
	if (!WebPValidateConfig(&config) || !WebPPictureInit(&picture)) {
		vips_error("webpwrite", "%s", "invalid configuration");
		return -1;
	}
	picture.writer = WebPMemoryWrite;
	picture.custom_ptr = bitstream;
	picture.use_argb = 0;
	picture.width = image->Xsize;
	picture.height = image->Ysize;
	ok = image->Bands == 4 ? WebPPictureImportRGBA(&picture, frame, stride)
			       : WebPPictureImportRGB(&picture, frame, stride);
	if (!ok) {
		WebPPictureFree(&picture);
		vips_error("webpwrite", "%s", "picture memory error");
		return -1;
	}
	ok = WebPEncode(&config, &picture);
	WebPPictureFree(&picture);
	if (!ok) {
		vips_error("webpwrite", "%s", "unable to encode");
		return -1;
	}
	return 0;
}

/* The bitstream as libvips writes it: through libwebpmux, with the metadata chunks the image
 * carries (libwebpmux puts them in the container's order). */
static int
assemble(VipsImage *image, const WebPMemoryWriter *bitstream, WebPData *out)
{
	static const struct {
		const char *vips;
		const char *webp;
	} chunks[] = {
		{ VIPS_META_ICC_NAME, "ICCP" },
		{ VIPS_META_EXIF_NAME, "EXIF" },
		{ VIPS_META_XMP_NAME, "XMP " },
	};
	WebPData data = { bitstream->mem, bitstream->size };
	WebPMux *mux = WebPMuxCreate(&data, 1);
	int result = -1;

	if (!mux) {
		vips_error("webpwrite", "%s", "mux error");
		return -1;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(chunks); i++) {
		WebPData chunk;

		if (!vips_image_get_typeof(image, chunks[i].vips))
			continue;
		if (vips_image_get_blob(image, chunks[i].vips, (const void **) &chunk.bytes,
			    &chunk.size))
			goto done;
		if (WebPMuxSetChunk(mux, chunks[i].webp, &chunk, 1) != WEBP_MUX_OK) {
			vips_error("webpwrite", "%s", "chunk add error");
			goto done;
		}
	}
	if (WebPMuxAssemble(mux, out) != WEBP_MUX_OK) {
		vips_error("webpwrite", "%s", "mux error");
		goto done;
	}
	result = 0;
done:
	WebPMuxDelete(mux);
	return result;
}

int
imgedge_webp_write(VipsImage *in, void **buf, size_t *len, int quality, int strip)
{
	VipsImage *image = NULL;
	VipsPel *frame = NULL;
	WebPMemoryWriter bitstream;
	WebPData assembled = { NULL, 0 };
	int result = -1;

	if (!imgedge_webp_write_applies(in, quality, FALSE)) {
		vips_error("webpwrite", "%s", "image or settings need libvips' saver");
		return -1;
	}
	WebPMemoryWriterInit(&bitstream);
	if (imgedge_save_ready(in, strip, &image) || vips_image_pio_input(image) ||
		!(frame = frame_of(image)) || encode(image, frame, quality, &bitstream) ||
		assemble(image, &bitstream, &assembled))
		goto done;
	*buf = g_memdup2(assembled.bytes, assembled.size);
	*len = assembled.size;
	used++;
	result = 0;
done:
	WebPDataClear(&assembled);
	WebPMemoryWriterClear(&bitstream);
	g_free(frame);
	VIPS_UNREF(image);
	return result;
}

/* libvips 8.14.0 and 8.14.1 ignore webpsave's `strip` (fixed in 8.14.2: "fix strip arg to
 * webpsave"), so what they write keeps the ICC profile, EXIF and XMP that `stripmeta` asked
 * to drop. Those chunks are removed here, from a WebP libvips wrote; elsewhere a no-op. */
int
imgedge_webp_strip(void **buf, size_t *len)
{
#if VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION == 14 && VIPS_MICRO_VERSION < 2
	static const char *chunks[] = { "ICCP", "EXIF", "XMP " };
	WebPData data = { *buf, *len };
	WebPData stripped = { NULL, 0 };
	WebPMux *mux = WebPMuxCreate(&data, 0);
	gboolean found = FALSE;

	if (!mux) {
		vips_error("webpsave", "%s", "mux error");
		return -1;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(chunks); i++)
		found |= WebPMuxDeleteChunk(mux, chunks[i]) == WEBP_MUX_OK;
	if (found && WebPMuxAssemble(mux, &stripped) != WEBP_MUX_OK) {
		WebPMuxDelete(mux);
		vips_error("webpsave", "%s", "mux error");
		return -1;
	}
	WebPMuxDelete(mux);
	if (found) {
		g_free(*buf);
		*buf = g_memdup2(stripped.bytes, stripped.size);
		*len = stripped.size;
		WebPDataClear(&stripped);
	}
#else
	(void) buf;
	(void) len;
#endif
	return 0;
}
