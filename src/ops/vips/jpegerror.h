/* libjpeg's error handling for the shim's own JPEG code (jpegpixels.c, jpegwrite.c): an error
 * puts libjpeg's message in libvips' error buffer, as libvips' own handler does, and jumps
 * back to the caller's setjmp; warnings are ignored (for decoding, libvips with fail_on none
 * does the same: the decoder goes on and fills what is missing with grey).
 *
 * Include after jpeglib.h, with VIPS_DISABLE_COMPAT defined before vips.h: libvips >= 8.15
 * includes its vips7 compatibility header from vips.h, whose `#define error_exit
 * vips_error_exit` would rename libjpeg's error_exit field. */
#ifndef IMGEDGE_JPEGERROR_H
#define IMGEDGE_JPEGERROR_H

#include <setjmp.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jmp;
} JpegError;

static void
jpeg_error_exit_to_vips(j_common_ptr cinfo)
{
	JpegError *error = (JpegError *) cinfo->err;
	char message[JMSG_LENGTH_MAX];

	(*cinfo->err->format_message)(cinfo, message);
	vips_error("VipsJpeg", "%s", message);
	longjmp(error->jmp, 1);
}

static void
jpeg_error_ignore_message(j_common_ptr cinfo, int level)
{
	(void) cinfo;
	(void) level;
}

/* Points `err` of a compress or decompress struct at `error`; the caller still sets the jump
 * point (setjmp(error->jmp)) before calling libjpeg. */
static inline struct jpeg_error_mgr *
jpeg_error_init(JpegError *error)
{
	struct jpeg_error_mgr *pub = jpeg_std_error(&error->pub);

	pub->error_exit = jpeg_error_exit_to_vips;
	pub->emit_message = jpeg_error_ignore_message;
	return pub;
}

#endif /* IMGEDGE_JPEGERROR_H */
