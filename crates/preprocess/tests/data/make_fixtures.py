"""Writes the small decoder fixtures of this folder and what `cv2.imread(path)` returns for them.

Not run by CI: the outputs are committed (about 60 KB). Regenerate with a throwaway environment:
    python3 -m venv /tmp/cvenv && /tmp/cvenv/bin/pip install opencv-python-headless pillow numpy
    /tmp/cvenv/bin/python crates/preprocess/tests/data/make_fixtures.py
For every image `NAME.EXT` it writes `NAME.bgr` (the raw H×W×3 uint8 array of cv2.imread) and a
line `NAME.EXT<TAB>H<TAB>W<TAB>what it exercises` in `cv2_imread.tsv`. For every resize case it
writes `resize_N.in.f32` and `resize_N.out.f32` (raw little-endian float32, H×W×3) and a line
`N<TAB>H<TAB>W<TAB>scale (Python repr)<TAB>H'<TAB>W'<TAB>what` in `cv2_resize.tsv`: the output of
`cv2.resize(src, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)` with IPP off. The first line
of each .tsv records the versions used.
"""
import io
import os

import cv2
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
H, W = 29, 37  # odd, not multiples of the 8/16-pixel JPEG blocks


def pattern():
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    rng = np.random.default_rng(4)
    r = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 255 * x / (W - 1)
    b = 255 * (1 - y / (H - 1))
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (H, W, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def exif_with_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def main():
    rgb = pattern()
    pil = Image.fromarray(rgb, "RGB")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    rows = []

    def save_pil(name, image, what, **kw):
        image.save(os.path.join(HERE, name), **kw)
        rows.append((name, what))

    def save_cv(name, array, params, what):
        assert cv2.imwrite(os.path.join(HERE, name), array, params)
        rows.append((name, what))

    save_pil("jpeg_420.jpg", pil, "baseline JPEG, 4:2:0 (h2v2 fancy upsampling)", quality=90, subsampling=2)
    save_pil("jpeg_422.jpg", pil, "baseline JPEG, 4:2:2 (h2v1 fancy upsampling)", quality=90, subsampling=1)
    save_pil("jpeg_444.jpg", pil, "baseline JPEG, 4:4:4 (no upsampling)", quality=90, subsampling=0)
    save_pil("jpeg_progressive.jpg", pil, "progressive JPEG, 4:2:0", quality=85, progressive=True)
    save_pil("jpeg_gray.jpg", pil.convert("L"), "1-component JPEG: gray copied into B, G, R", quality=90)
    save_pil("jpeg_cmyk.jpg", pil.convert("CMYK"), "4-component Adobe CMYK JPEG: OpenCV's CMYK->BGR formula", quality=90)
    save_pil("jpeg_exif6.jpg", pil, "EXIF Orientation 6 (rotate 90 degrees clockwise): H and W swap", quality=90, exif=exif_with_orientation(6))
    save_pil("jpeg_exif3.jpg", pil, "EXIF Orientation 3 (rotate 180 degrees)", quality=90, exif=exif_with_orientation(3))
    save_cv("jpeg_440.jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440], "baseline JPEG, 4:4:0 (h1v2 upsampling)")
    save_cv("jpeg_411.jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411], "baseline JPEG, 4:1:1 (h4v1 upsampling)")
    save_cv("jpeg_restart.jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_RST_INTERVAL, 1], "baseline JPEG with a restart marker after every MCU")
    save_pil("png_exif8.png", pil, "PNG with an eXIf chunk, Orientation 8 (rotate 90 degrees counter-clockwise)", exif=exif_with_orientation(8))
    save_cv("png_rgb16.png", (bgr.astype(np.uint16) * 257 + np.arange(H * W * 3, dtype=np.uint16).reshape(H, W, 3) % 251), [], "16-bit RGB PNG: the high byte of each sample")
    pal = pil.convert("P", palette=Image.ADAPTIVE, colors=16)
    save_pil("png_palette_trns.png", pal, "palette PNG with tRNS: expanded, alpha dropped", transparency=bytes([0, 128] + [255] * 14))
    la = Image.merge("LA", [pil.convert("L"), Image.fromarray(rgb[:, :, 0])])
    save_pil("png_gray_alpha.png", la, "gray+alpha PNG: alpha dropped, gray copied into B, G, R")
    save_pil("png_rgb_trns.png", pil, "RGB PNG with a tRNS colour key: ignored", transparency=tuple(int(v) for v in rgb[0, 0]))
    save_pil("png_1bit.png", pil.convert("1"), "1-bit gray PNG: 0/255")

    cv2.ipp.setUseIPP(False)
    with open(os.path.join(HERE, "cv2_imread.tsv"), "w") as out:
        out.write(f"# cv2 {cv2.__version__}, Pillow {Image.__version__}, numpy {np.__version__}\n")
        for name, what in rows:
            img = cv2.imread(os.path.join(HERE, name))
            assert img is not None and img.dtype == np.uint8 and img.shape[2] == 3, name
            np.ascontiguousarray(img).tofile(os.path.join(HERE, os.path.splitext(name)[0] + ".bgr"))
            out.write(f"{name}\t{img.shape[0]}\t{img.shape[1]}\t{what}\n")


RESIZE_CASES = [
    (2, 3, 20.0, "upscaling x20 (chelsea_tiny's scale)"),
    (7, 9, 0.5, "s = 0.5: INTER_AREA fast 2x2 path, odd H and W rounded up (edge row and column)"),
    (5, 5, 0.5, "s = 0.5: odd sides rounded down (rint(2.5) = 2), no edge"),
    (13, 17, 0.7, "downscaling, 2 taps"),
    (11, 23, 1000 / 1100, "downscaling by retina_wide's scale"),
    (5, 6, 1.5, "upscaling x1.5 (coffee's scale)"),
    (4, 4, 1.0, "same size: copy"),
]


def resize_cases():
    cv2.ipp.setUseIPP(False)
    assert not cv2.ipp.useIPP()
    rng = np.random.default_rng(11)
    with open(os.path.join(HERE, "cv2_resize.tsv"), "w") as out:
        out.write(f"# cv2 {cv2.__version__}, IPP off, numpy {np.__version__}\n")
        for n, (h, w, s, what) in enumerate(RESIZE_CASES):
            src = rng.uniform(-123, 153, size=(h, w, 3)).astype(np.float32)
            dst = cv2.resize(src, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
            src.tofile(os.path.join(HERE, f"resize_{n}.in.f32"))
            dst.tofile(os.path.join(HERE, f"resize_{n}.out.f32"))
            out.write(f"{n}\t{h}\t{w}\t{s!r}\t{dst.shape[0]}\t{dst.shape[1]}\t{what}\n")


if __name__ == "__main__":
    main()
    resize_cases()
