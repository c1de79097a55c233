/*
 * The one place where libjpeg(-turbo) is driven. libjpeg reports fatal errors by calling
 * `error_exit`, which must not return; the only portable way out of C frames without unwinding
 * through them is setjmp/longjmp, so every libjpeg call of a decode lives in this one C function
 * (butd_jpeg_decode) and Rust never sees a longjmp.
 *
 * Settings are libjpeg's defaults, exactly as cv2.imread leaves them (OpenCV sets no DCT method and
 * no upsampling option): JDCT_ISLOW integer IDCT, fancy upsampling, block smoothing. The output
 * colour space is what OpenCV asks for with IMREAD_COLOR: BGR for 1- and 3-component files
 * (libjpeg-turbo's JCS_EXT_BGR, byte-identical to OpenCV's RGB request followed by its swap), CMYK for
 * 4-component files (OpenCV then applies its own CMYK->BGR formula; we do that in Rust).
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "jpeglib.h"
#include "jerror.h"

/* Return codes, mirrored in src/decode/jpeg.rs. */
#define BUTD_JPEG_OK 0
#define BUTD_JPEG_ERROR 1     /* libjpeg error_exit: message holds libjpeg's text */
#define BUTD_JPEG_REFUSED 2   /* the Rust allocation callback refused (size limit or no memory) */
#define BUTD_JPEG_TRUNCATED 3 /* data missing: message holds libjpeg's warning text */

typedef unsigned char *(*butd_alloc_fn)(void *ctx, unsigned width, unsigned height, unsigned channels);

typedef struct {
  unsigned width;
  unsigned height;
  unsigned channels; /* 3 = BGR, 4 = CMYK as libjpeg delivers it */
  char message[JMSG_LENGTH_MAX];
} butd_jpeg_result;

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  int code;
  int saw_eof;
  char *message;
} butd_error_mgr;

static void butd_error_exit(j_common_ptr cinfo) {
  butd_error_mgr *err = (butd_error_mgr *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  err->code = BUTD_JPEG_ERROR;
  longjmp(err->jump, 1);
}

/*
 * Warnings (msg_level -1). libjpeg keeps decoding after these and fills missing data with zeros;
 * cv2.imread then returns that partly made-up image. We refuse the image when pixels are made up:
 * - JWRN_HIT_MARKER: an entropy-coded segment ended before its MCUs did (a cut or corruption):
 *   stop at once;
 * - JWRN_JPEG_EOF: the data ended before the EOI marker. That alone loses nothing for a
 *   single-scan Huffman file (its scan data is all there, or HIT_MARKER fires), so such a file
 *   decodes as in cv2. For a progressive file it is a truncation when some coefficient has not
 *   received its last refinement scan (checked after jpeg_start_decompress has read every scan);
 *   arithmetic-coded data gives no HIT_MARKER, so there any early end is a truncation. Not
 *   detected: a sequential file with several scans (one per component, rare) cut exactly between
 *   two scans.
 * All other warnings (e.g. extraneous bytes before a marker) leave the pixels intact and are
 * ignored, as cv2 ignores them.
 */
static void butd_emit_message(j_common_ptr cinfo, int msg_level) {
  butd_error_mgr *err = (butd_error_mgr *)cinfo->err;
  if (msg_level != -1)
    return;
  if (err->pub.msg_code == JWRN_JPEG_EOF) {
    if (!err->saw_eof)
      (*cinfo->err->format_message)(cinfo, err->message);
    err->saw_eof = 1;
  } else if (err->pub.msg_code == JWRN_HIT_MARKER) {
    (*cinfo->err->format_message)(cinfo, err->message);
    err->code = BUTD_JPEG_TRUNCATED;
    longjmp(err->jump, 1);
  }
}

/* Every coefficient of every component has had its final (Al = 0) scan. */
static int progressive_complete(j_decompress_ptr cinfo) {
  int ci, k;
  for (ci = 0; ci < cinfo->num_components; ci++)
    for (k = 0; k < DCTSIZE2; k++)
      if (cinfo->coef_bits[ci][k] != 0)
        return 0;
  return 1;
}

static int ended_early(j_decompress_ptr cinfo, const butd_error_mgr *err) {
  return err->saw_eof &&
         (cinfo->arith_code || (cinfo->progressive_mode && !progressive_complete(cinfo)));
}

int butd_jpeg_decode(const unsigned char *data, unsigned long len, butd_alloc_fn alloc, void *ctx,
                     butd_jpeg_result *result) {
  struct jpeg_decompress_struct cinfo;
  butd_error_mgr err;
  unsigned char *out;

  memset(result, 0, sizeof(*result));
  memset(&cinfo, 0, sizeof(cinfo)); /* jpeg_destroy_decompress is a no-op until it is created */
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = butd_error_exit;
  err.pub.emit_message = butd_emit_message;
  err.code = BUTD_JPEG_OK;
  err.saw_eof = 0;
  err.message = result->message;

  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return err.code;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, len);
  jpeg_read_header(&cinfo, TRUE);

  if (cinfo.num_components == 4) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    cinfo.out_color_space = JCS_EXT_BGR;
  }
  jpeg_calc_output_dimensions(&cinfo);
  result->width = cinfo.output_width;
  result->height = cinfo.output_height;
  result->channels = (unsigned)cinfo.output_components;

  out = alloc(ctx, result->width, result->height, result->channels);
  if (out == NULL) {
    jpeg_destroy_decompress(&cinfo);
    return BUTD_JPEG_REFUSED;
  }

  jpeg_start_decompress(&cinfo);
  if (ended_early(&cinfo, &err)) {
    jpeg_destroy_decompress(&cinfo);
    return BUTD_JPEG_TRUNCATED;
  }
  {
    size_t stride = (size_t)result->width * result->channels;
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
  }
  jpeg_finish_decompress(&cinfo);
  {
    int early = ended_early(&cinfo, &err);
    jpeg_destroy_decompress(&cinfo);
    return early ? BUTD_JPEG_TRUNCATED : BUTD_JPEG_OK;
  }
}
