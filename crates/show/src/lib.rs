//! A record's detections drawn on its image: each kept box outlined in its own colour with an
//! "attribute object score" label on a filled tag, as detectron2's Visualizer draws them; the
//! picture is enlarged so that a small image's labels stay readable.
//!
//! ```no_run
//! use butd_show::{draw, Detection};
//! let image = butd_preprocess::decode_file("coffee.jpg".as_ref())?;
//! let dets = [Detection { bbox: [10.0, 20.0, 200.0, 180.0], object: 50, object_conf: 0.91,
//!                         attribute: 3, attribute_conf: 0.4 }];
//! draw(&image, &dets, &butd_vocab::Vocab::builtin()).write_png("coffee.png".as_ref())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! - Pure Rust and libtorch-free: decoding is butd-preprocess's (the same pixels the network
//!   saw), the text an embedded bitmap font ([`font`]), the output a PNG (`png`).
//! - The canvas is the image scaled (bilinear) so that its long side is at least 900 px:
//!   labels keep a fixed size in canvas pixels, boxes are drawn in canvas coordinates.
//! - Labels are placed above their box when there is room, else inside it at the top; drawn
//!   from the lowest score up, so the most confident box's label ends on top.
use std::path::Path;

pub mod font;

/// One kept box of a record, with its labels (the record's `boxes`, `objects_id`/`_conf`,
/// `attrs_id`/`_conf` rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// x1, y1, x2, y2 in original-image pixels.
    pub bbox: [f32; 4],
    pub object: i64,
    pub object_conf: f32,
    pub attribute: i64,
    pub attribute_conf: f32,
}

/// An RGB picture.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    /// RGB, row-major.
    pub rgb: Vec<u8>,
}

/// The long side of the canvas at least, in pixels.
const MIN_LONG_SIDE: f32 = 900.0;

/// detectron2-like colours, distinct on photos (RGB).
const PALETTE: [[u8; 3]; 10] = [
    [0, 114, 189],
    [217, 83, 25],
    [237, 177, 32],
    [126, 47, 142],
    [119, 172, 48],
    [77, 190, 238],
    [162, 20, 47],
    [255, 0, 255],
    [0, 160, 120],
    [230, 100, 150],
];

/// "attribute object score", as the label of a box.
pub fn label(d: &Detection, vocab: &butd_vocab::Vocab) -> String {
    format!(
        "{} {} {:.2}",
        vocab.attribute(d.attribute),
        vocab.object(d.object),
        d.object_conf
    )
}

/// `image` enlarged to the canvas, with every detection's box and label.
pub fn draw(
    image: &butd_preprocess::ImageBgr,
    detections: &[Detection],
    vocab: &butd_vocab::Vocab,
) -> Canvas {
    let long = image.width.max(image.height).max(1) as f32;
    let scale = (MIN_LONG_SIDE / long).max(1.0);
    let mut canvas = Canvas::scaled_from(image, scale);
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|&a, &b| {
        detections[a]
            .object_conf
            .total_cmp(&detections[b].object_conf)
    });
    let thickness = 2 + (canvas.width.max(canvas.height) / 600);
    for &i in &order {
        let d = &detections[i];
        let color = PALETTE[i % PALETTE.len()];
        let [x1, y1, x2, y2] = d.bbox.map(|v| v * scale);
        canvas.outline(x1, y1, x2, y2, thickness, color);
        canvas.tag(x1, y1, &label(d, vocab), color);
    }
    canvas
}

impl Canvas {
    /// `image` (BGR) scaled by `scale` with bilinear interpolation, as RGB.
    fn scaled_from(image: &butd_preprocess::ImageBgr, scale: f32) -> Canvas {
        let (w, h) = (image.width, image.height);
        let width = ((w as f32 * scale).round() as usize).max(1);
        let height = ((h as f32 * scale).round() as usize).max(1);
        let mut rgb = vec![0u8; width * height * 3];
        let px = |x: usize, y: usize, c: usize| f32::from(image.data[(y * w + x) * 3 + (2 - c)]);
        for oy in 0..height {
            let sy = ((oy as f32 + 0.5) / scale - 0.5).clamp(0.0, (h - 1) as f32);
            let (y0, fy) = (sy.floor() as usize, sy.fract());
            let y1 = (y0 + 1).min(h - 1);
            for ox in 0..width {
                let sx = ((ox as f32 + 0.5) / scale - 0.5).clamp(0.0, (w - 1) as f32);
                let (x0, fx) = (sx.floor() as usize, sx.fract());
                let x1 = (x0 + 1).min(w - 1);
                for c in 0..3 {
                    let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
                    let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
                    rgb[(oy * width + ox) * 3 + c] = (top * (1.0 - fy) + bottom * fy).round() as u8;
                }
            }
        }
        Canvas { width, height, rgb }
    }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` (0..=255); outside: nothing.
    fn blend(&mut self, x: i64, y: i64, color: [u8; 3], alpha: u8) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = (y as usize * self.width + x as usize) * 3;
        for c in 0..3 {
            let (old, new) = (u32::from(self.rgb[i + c]), u32::from(color[c]));
            self.rgb[i + c] =
                ((old * (255 - u32::from(alpha)) + new * u32::from(alpha)) / 255) as u8;
        }
    }

    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3], alpha: u8) {
        for y in y0..y1 {
            for x in x0..x1 {
                self.blend(x, y, color, alpha);
            }
        }
    }

    /// A box outline `t` pixels wide, inside the box's edges.
    fn outline(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, t: usize, color: [u8; 3]) {
        let (x1, y1, x2, y2) = (
            x1.round() as i64,
            y1.round() as i64,
            x2.round() as i64,
            y2.round() as i64,
        );
        let t = t as i64;
        self.fill(x1, y1, x2 + 1, y1 + t, color, 255);
        self.fill(x1, y2 + 1 - t, x2 + 1, y2 + 1, color, 255);
        self.fill(x1, y1, x1 + t, y2 + 1, color, 255);
        self.fill(x2 + 1 - t, y1, x2 + 1, y2 + 1, color, 255);
    }

    /// `text` in white on a tag of `color`, above (x, y) when it fits, else just below.
    fn tag(&mut self, x: f32, y: f32, text: &str, color: [u8; 3]) {
        let (tw, th) = (
            (text.chars().count() * font::W + 6) as i64,
            (font::H + 2) as i64,
        );
        let x0 = (x.round() as i64).clamp(0, (self.width as i64 - tw).max(0));
        let y0 = if y.round() as i64 - th >= 0 {
            y.round() as i64 - th
        } else {
            y.round() as i64
        };
        self.fill(x0, y0, x0 + tw, y0 + th, color, 210);
        for (k, c) in text.chars().enumerate() {
            for gy in 0..font::H {
                for gx in 0..font::W {
                    let a = font::coverage(c, gx, gy);
                    if a > 0 {
                        let px = x0 + 3 + (k * font::W + gx) as i64;
                        self.blend(px, y0 + 1 + gy as i64, [255, 255, 255], a);
                    }
                }
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG, atomically (a temporary file, then a rename).
    pub fn write_png(&self, path: &Path) -> std::io::Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let result = (|| {
            let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let mut encoder = png::Encoder::new(file, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
            writer
                .write_image_data(&self.rgb)
                .map_err(std::io::Error::other)?;
            writer.finish().map_err(std::io::Error::other)?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: usize, h: usize) -> butd_preprocess::ImageBgr {
        butd_preprocess::ImageBgr {
            width: w,
            height: h,
            data: vec![128; w * h * 3],
        }
    }

    #[test]
    fn a_small_image_is_enlarged_and_its_box_drawn_in_canvas_pixels() {
        let det = Detection {
            bbox: [10.0, 10.0, 20.0, 20.0],
            object: 50,
            object_conf: 0.9,
            attribute: 1,
            attribute_conf: 0.5,
        };
        let c = draw(&gray(45, 30), &[det], &butd_vocab::Vocab::builtin());
        assert_eq!((c.width, c.height), (900, 600));
        let at = |x: usize, y: usize| &c.rgb[(y * c.width + x) * 3..][..3];
        assert_eq!(
            at(201, 300),
            PALETTE[0],
            "the box's left edge: x1 = 10 → 200"
        );
        assert_eq!(at(300, 300), [128, 128, 128], "inside the box: the image");
        assert_eq!(at(800, 500), [128, 128, 128], "elsewhere: the image");
    }

    #[test]
    fn the_label_names_attribute_object_and_score() {
        let det = Detection {
            bbox: [0.0; 4],
            object: 50,
            object_conf: 0.873,
            attribute: 2,
            attribute_conf: 0.5,
        };
        assert_eq!(
            label(&det, &butd_vocab::Vocab::builtin()),
            "attr#2 man 0.87"
        );
    }

    #[test]
    fn the_png_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        draw(&gray(10, 10), &[], &butd_vocab::Vocab::builtin())
            .write_png(&path)
            .unwrap();
        let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
        let info = decoder.read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), (900, 900));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
