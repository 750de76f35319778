/* The image a libvips saver writes: `in` with libvips' own metadata rules applied.
 *
 * Why: jpegwrite.c and webpwrite.c write from the calling thread what libvips' savers write
 * through their sinks, so the metadata they write must be the one libvips' saver would: the
 * EXIF block rebuilt from the image's fields (size, resolution, orientation, exif-ifd*), and
 * nothing when stripped. libvips 8.14 rebuilds EXIF in each saver (with `vips__exif_update`,
 * which it exports); from 8.15 on its saver base class does it on the image it calls `ready`
 * (EXIF, the `keep` rules, an ICC profile that does not fit the image dropped) and the
 * function is hidden. There the work is asked of the base class itself, through a saver of our
 * own that writes nothing (`imgedge_save_ready`), so every libvips keeps its own rules.
 *
 * Only for images a saver keeps as they are (8-bit, uncoded: what the two writers take). The
 * saver class's fields became flags in 8.17; both forms are set below.
 */

#define VIPS_DISABLE_COMPAT
#include <vips/vips.h>

#include "shim.h"

#if VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION == 14

/* libvips 8.14 exports it (not in its headers): rebuilds "exif-data" from the image's
 * resolution, size, orientation and exif-ifd* fields, as its savers do before writing. */
extern int vips__exif_update(VipsImage *image);

int
imgedge_save_ready(VipsImage *in, int strip, VipsImage **ready)
{
	static const char *metadata[] = { VIPS_META_EXIF_NAME, VIPS_META_XMP_NAME,
		VIPS_META_IPTC_NAME, VIPS_META_ICC_NAME };
	VipsImage *copy;

	/* A copy: the rebuild changes the image's fields, and `in` may be saved again (the JPEG
	 * retry after a failed WebP). libvips rebuilds it on its saver's copy too. */
	if (vips_copy(in, &copy, NULL))
		return -1;
	if (strip) {
		for (size_t i = 0; i < G_N_ELEMENTS(metadata); i++)
			vips_image_remove(copy, metadata[i]);
	}
	else if (vips__exif_update(copy)) {
		g_object_unref(copy);
		return -1;
	}
	*ready = copy;
	return 0;
}

#else

/* A saver that saves nothing: its build is the base class's, which leaves `ready`. */
typedef VipsForeignSave ImgedgeSaveReady;
typedef VipsForeignSaveClass ImgedgeSaveReadyClass;

G_DEFINE_TYPE(ImgedgeSaveReady, imgedge_save_ready_op, VIPS_TYPE_FOREIGN_SAVE);

/* Every format kept as it is (the writers only take 8-bit images anyway). */
static VipsBandFormat same_format[VIPS_FORMAT_LAST] = {
	VIPS_FORMAT_UCHAR, VIPS_FORMAT_CHAR, VIPS_FORMAT_USHORT, VIPS_FORMAT_SHORT,
	VIPS_FORMAT_UINT, VIPS_FORMAT_INT, VIPS_FORMAT_FLOAT, VIPS_FORMAT_COMPLEX,
	VIPS_FORMAT_DOUBLE, VIPS_FORMAT_DPCOMPLEX
};

static const char *suffixes[] = { ".imgedge-save-ready", NULL };

static void
imgedge_save_ready_op_class_init(ImgedgeSaveReadyClass *class)
{
	VipsObjectClass *object_class = (VipsObjectClass *) class;

	object_class->nickname = "imgedge_save_ready";
	object_class->description = "the image a saver writes (imgedge)";
	/* libvips' saver search reads every saver's suffixes (and crashes on none): one that no
	 * file name asks for. */
	((VipsForeignClass *) class)->suffs = suffixes;
	class->format_table = same_format;
#if VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION <= 16
	class->saveable = VIPS_SAVEABLE_ANY;
	class->coding[VIPS_CODING_NONE] = TRUE;
#else
	class->saveable = VIPS_FOREIGN_SAVEABLE_ANY;
	class->coding = VIPS_FOREIGN_CODING_NONE;
#endif
}

static void
imgedge_save_ready_op_init(ImgedgeSaveReady *save)
{
	(void) save;
}

int
imgedge_save_ready(VipsImage *in, int strip, VipsImage **ready)
{
	VipsForeignSave *save = g_object_new(imgedge_save_ready_op_get_type(), NULL);

	g_object_set(save, "in", in,
		"keep", (int) (strip ? VIPS_FOREIGN_KEEP_NONE : VIPS_FOREIGN_KEEP_ALL),
		NULL);
	if (vips_object_build(VIPS_OBJECT(save)) || !save->ready) {
		vips_object_unref_outputs(VIPS_OBJECT(save));
		g_object_unref(save);
		return -1;
	}
	*ready = save->ready;
	g_object_ref(*ready);
	g_object_unref(save);
	return 0;
}

#endif

/* Whether the writers may use this: libvips built with libexif (without it libvips rebuilds
 * no EXIF, and its JPEG saver writes a JFIF marker instead). Asked once, of a 1×1 image. */
static gpointer
exif_rebuilds(gpointer unused)
{
	VipsImage *image = NULL;
	VipsImage *ready = NULL;
	gboolean has;

	(void) unused;
	has = !vips_black(&image, 1, 1, NULL) &&
		!imgedge_save_ready(image, FALSE, &ready) &&
		vips_image_get_typeof(ready, VIPS_META_EXIF_NAME);
	VIPS_UNREF(ready);
	VIPS_UNREF(image);
	return GINT_TO_POINTER(has);
}

gboolean
imgedge_save_ready_applies(void)
{
	static GOnce exif = G_ONCE_INIT;

	return GPOINTER_TO_INT(g_once(&exif, exif_rebuilds, NULL));
}
