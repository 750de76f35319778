/* Fixed-signature wrappers over libvips' varargs API (see shim.c for why).
 *
 * Conventions, for every function that returns int: 0 = success, -1 = failure with the reason
 * left in libvips' error buffer (read it with imgedge_error_take()). Output images are new
 * references owned by the caller (g_object_unref); input images are only borrowed. Saved
 * buffers are g_malloc'd and owned by the caller (g_free).
 *
 * The *_buffer loaders do NOT copy their input: the bytes must stay alive and unchanged until
 * the last image derived from them has been unreffed.
 */
#ifndef IMGEDGE_SHIM_H
#define IMGEDGE_SHIM_H

#include <stddef.h>
#include <vips/vips.h>

/* Lifecycle and errors. */
int imgedge_init(int concurrency);
/* orc programs compiled through the guard of libvips <= 8.14 (shim.c, "orc"). */
int imgedge_orc_guarded_calls(void);
int imgedge_operation_exists(const char *nickname);
char *imgedge_error_take(void);
void imgedge_thread_shutdown(void);
const char *imgedge_version(void);

/* Loading. fail_on is a VipsFailOn value. */
int imgedge_load(const void *buf, size_t len, int sequential, int fail_on, int pages,
	VipsImage **out);
int imgedge_load_libvips(const void *buf, size_t len, int sequential, int fail_on, int pages,
	VipsImage **out);
int imgedge_load_jpeg(const void *buf, size_t len, int shrink, int fail_on, VipsImage **out);
int imgedge_load_jpeg_from(VipsImage *full, const void *buf, size_t len, int shrink,
	VipsImage **out);
int imgedge_jpeg_headers_reused(void);
int imgedge_thumbnail(const void *buf, size_t len, int width, int height, int fail_on, int pages,
	VipsImage **out);

/* Metadata. */
int imgedge_width(VipsImage *in);
int imgedge_height(VipsImage *in);
int imgedge_bands(VipsImage *in);
int imgedge_band_format(VipsImage *in);
const char *imgedge_interpretation(VipsImage *in);
int imgedge_has_alpha(VipsImage *in);
int imgedge_has_alpha_bimg(VipsImage *in);
int imgedge_has_icc(VipsImage *in);
int imgedge_exif_orientation(VipsImage *in);
int imgedge_orientation(VipsImage *in);
const char *imgedge_loader(VipsImage *in);

/* Operations. */
int imgedge_copy_memory(VipsImage *in, VipsImage **out);
int imgedge_rot(VipsImage *in, VipsImage **out, int angle);
int imgedge_flip(VipsImage *in, VipsImage **out, int vertical);
int imgedge_autorot(VipsImage *in, VipsImage **out);
int imgedge_set_orientation(VipsImage *in, VipsImage **out, int orientation);
int imgedge_resize(VipsImage *in, VipsImage **out, double hscale, double vscale,
	int sequential);
/* jpegpixels.c: the pixels of a libvips JPEG load decoded from buf in one piece; *out NULL
 * where that does not apply. */
int imgedge_jpeg_pixels(VipsImage *header, const void *buf, size_t len, int shrink,
	VipsImage **out);
gboolean imgedge_jpeg_pixels_applies(VipsImage *header);
int imgedge_jpeg_pixels_used(void);
/* pngpixels.c: the pixels of a libvips PNG load inflated from buf in one call; *out NULL
 * where that does not apply. */
int imgedge_png_pixels(VipsImage *header, const void *buf, size_t len, VipsImage **out);
int imgedge_png_pixels_used(void);
/* Builds an operation of the shim's own (its arguments set) and hands back its "out"; takes
 * the caller's reference to the operation. */
int imgedge_operation_out(VipsOperation *operation, VipsImage **out);
/* round(c·a/255) for every band but the last (alpha) of an 8-bit image, in one pass. */
int imgedge_premultiply_uchar(VipsImage *in, VipsImage **out);
/* reduce.c: Lanczos3 reduction of an 8-bit image by a shrink >= 1, one axis at a time. */
int imgedge_reduceh_uchar(VipsImage *in, VipsImage **out, double hshrink);
int imgedge_reducev_uchar(VipsImage *in, VipsImage **out, double vshrink);
/* The widest SIMD reduce.c's operations built from now on use: 2 = AVX2 where the CPU has it,
 * 1 = SSE2 (x86-64) or C; below 0, or above what the CPU has, = the widest it has (the default).
 * Returns the level in effect. Every level gives the same bytes; tests compare them. */
int imgedge_reduce_simd(int level);
int imgedge_extract_area(VipsImage *in, VipsImage **out, int left, int top, int width,
	int height);
int imgedge_embed(VipsImage *in, VipsImage **out, int left, int top, int width, int height,
	int extend, const double *background, int n);
int imgedge_smartcrop(VipsImage *in, VipsImage **out, int width, int height);
int imgedge_zoom(VipsImage *in, VipsImage **out, int xfac, int yfac);
int imgedge_gaussblur(VipsImage *in, VipsImage **out, double sigma, double min_ampl);
int imgedge_flatten(VipsImage *in, VipsImage **out, double r, double g, double b);
int imgedge_colourspace(VipsImage *in, VipsImage **out, int bw);
int imgedge_remove_icc(VipsImage *in, VipsImage **out);
int imgedge_text_watermark(VipsImage *in, VipsImage **out, const char *text, const char *font,
	int width, int dpi, int margin, double opacity, int replicate, const double *rgb);
int imgedge_composite(VipsImage *in, VipsImage *overlay, VipsImage **out, int left, int top,
	double opacity);

/* Saving. */
int imgedge_save_jpeg(VipsImage *in, void **buf, size_t *len, int quality, int interlace,
	int strip);
int imgedge_save_jpeg_libvips(VipsImage *in, void **buf, size_t *len, int quality,
	int interlace, int strip);
/* saveready.c: the image libvips' saver would write (its metadata rules); whether they can be
 * had here (libvips built with libexif). */
int imgedge_save_ready(VipsImage *in, int strip, VipsImage **ready);
gboolean imgedge_save_ready_applies(void);
/* Calls row(y, pixels, data) for every row of `in`, top to bottom, computed by the calling
 * thread in strips of libvips' fat-strip height (what the writers below write from). */
int imgedge_each_row(VipsImage *in, void (*row)(int y, const VipsPel *pixels, void *data),
	void *data);
/* jpegwrite.c: libvips' JPEG bytes, written from the calling thread where that applies. */
gboolean imgedge_jpeg_write_applies(VipsImage *in, int quality, int interlace);
int imgedge_jpeg_write(VipsImage *in, void **buf, size_t *len, int quality, int strip);
int imgedge_jpeg_write_used(void);
/* webpwrite.c: libvips' lossy WebP bytes, written from the calling thread where that
 * applies. */
int imgedge_save_webp_libvips(VipsImage *in, void **buf, size_t *len, int quality, int lossless,
	int strip);
gboolean imgedge_webp_write_applies(VipsImage *in, int quality, int lossless);
int imgedge_webp_write(VipsImage *in, void **buf, size_t *len, int quality, int strip);
int imgedge_webp_write_used(void);
int imgedge_webp_strip(void **buf, size_t *len);
/* PNG at zlib's `compression` (0-9): through pngwrite.c where it applies, else libvips'
 * pngsave with `zlib_level` (the level of the zlib in front, zlib.rs). */
int imgedge_save_png(VipsImage *in, void **buf, size_t *len, int compression, int zlib_level,
	int interlace, int palette, int quality, int effort, int strip);
/* pngwrite.c: libvips 8.14's PNG chunks, filtered and deflated (libdeflate) from the calling
 * thread where that applies. */
int imgedge_save_png_libvips(VipsImage *in, void **buf, size_t *len, int compression,
	int interlace, int palette, int quality, int effort, int strip);
gboolean imgedge_png_write_applies(VipsImage *in, int compression, int interlace, int palette);
int imgedge_png_write(VipsImage *in, void **buf, size_t *len, int compression, int strip);
int imgedge_png_write_used(void);
int imgedge_save_webp(VipsImage *in, void **buf, size_t *len, int quality, int lossless,
	int strip);
int imgedge_save_tiff(VipsImage *in, void **buf, size_t *len, int strip);
int imgedge_save_gif(VipsImage *in, void **buf, size_t *len, int strip);
int imgedge_save_heif(VipsImage *in, void **buf, size_t *len, int quality, int av1,
	int lossless, int strip);
int imgedge_save_jxl(VipsImage *in, void **buf, size_t *len, int quality, int lossless,
	int strip);

/* Animations (GIF, WebP): frames stacked vertically, frame height in `page-height`. */
int imgedge_n_pages(VipsImage *in);
int imgedge_page_height(VipsImage *in);
int imgedge_join_frames(VipsImage **frames, int n, VipsImage **out);
int imgedge_set_page_height(VipsImage *in, VipsImage **out, int page_height);
int imgedge_set_animation(VipsImage *in, VipsImage **out, const int *delays, int n_delays,
	int loop);
int imgedge_get_delays(VipsImage *in, int *delays, int max);
int imgedge_get_loop(VipsImage *in);

/* For tests: a deterministic gradient, reading one pixel, every header field as text. */
int imgedge_test_image(int width, int height, int bands, VipsImage **out);
char *imgedge_fields(VipsImage *in);
int imgedge_getpoint(VipsImage *in, int x, int y, double *values, int max);

/* Raw 8-bit pixels (benchmarks, quality metrics). */
int imgedge_from_pixels(const void *data, size_t len, int width, int height, int bands,
	VipsImage **out);
int imgedge_to_pixels(VipsImage *in, void **buf, size_t *len);

#endif /* IMGEDGE_SHIM_H */
