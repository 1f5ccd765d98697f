//! QR codes as PNG images (for the Connect screen's subscription URL).
//!
//! Rendered from the code's module matrix with a 4-module quiet zone, each module a square of
//! pixels, 1-bit grayscale with fast deflate — small files, no image library. The outbox
//! sender renders one per Connect screen it sends, on the service's async workers, so the
//! render is kept cheap:
//! - one bit per pixel is an eighth of the bytes to filter and compress that 8-bit samples
//!   were, and a two-colour image loses nothing by it;
//! - the code comes from `fast_qr`, which scores the eight mask patterns the standard asks
//!   for in about 90 µs for a subscription URL; `qrcode` took about 600 µs for the same, 10 %
//!   of the service's CPU in the purchase benchmark (BENCHMARKS.md).
//!
//! Error correction is level M (15 % of the code may be damaged), as before.

use fast_qr::{ECL, QRBuilder};

/// Pixels per module.
const SCALE: usize = 8;
/// Light modules around the code, as the standard asks for.
const QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the text does not fit in a QR code: {0}")]
    TooLong(String),
    #[error("cannot encode the PNG: {0}")]
    Png(String),
}

/// A PNG of the QR code of `text`.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = QRBuilder::new(text)
        .ecl(ECL::M)
        .build()
        .map_err(|e| QrError::TooLong(e.to_string()))?;
    let modules = code.size;
    let side = (modules + 2 * QUIET) * SCALE;
    // Packed rows, most significant bit first; 1 is light.
    let row_bytes = side.div_ceil(8);
    let mut data = vec![0xFFu8; row_bytes * side];
    for my in 0..modules {
        let mut packed = vec![0xFFu8; row_bytes];
        for (mx, module) in code[my].iter().take(modules).enumerate() {
            if !module.value() {
                continue;
            }
            let x0 = (mx + QUIET) * SCALE;
            for x in x0..x0 + SCALE {
                if let Some(byte) = packed.get_mut(x / 8) {
                    *byte &= !(0x80u8 >> (x % 8));
                }
            }
        }
        let y0 = (my + QUIET) * SCALE;
        for y in y0..y0 + SCALE {
            if let Some(dst) = data.get_mut(y * row_bytes..(y + 1) * row_bytes) {
                dst.copy_from_slice(&packed);
            }
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).map_err(|e| QrError::Png(e.to_string()))?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder
            .write_header()
            .map_err(|e| QrError::Png(e.to_string()))?;
        writer
            .write_image_data(&data)
            .map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The image expanded to one byte per pixel (0 dark, 255 light) and its side.
    fn decode(bytes: &[u8]) -> (Vec<u8>, usize) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        assert_eq!(frame.width, frame.height);
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        buf.truncate(frame.buffer_size());
        (buf, frame.width as usize)
    }

    #[test]
    fn renders_a_png_of_the_right_size() {
        let bytes = png("https://vpn.example.com/sub/AbCdEfGhIjKlMnOpQrStUvWxYz012345").unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (buf, side) = decode(&bytes);
        assert_eq!(side % SCALE, 0);
        // The quiet zone is light; the top-left finder pattern starts dark right after it.
        assert_eq!(buf[0], 255);
        let corner = QUIET * SCALE * side + QUIET * SCALE;
        assert_eq!(buf[corner], 0);
    }

    #[test]
    fn every_module_is_a_square_of_pixels_and_the_code_reads_back_as_the_text() {
        let text = "https://vpn.example.com/sub/AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        let (buf, side) = decode(&png(text).unwrap());
        let modules = side / SCALE - 2 * QUIET;
        // Level M of a 62-byte URL is version 4: 33 modules a side.
        assert_eq!(modules, 33);
        for y in 0..side {
            for x in 0..side {
                let (mx, my) = (x / SCALE, y / SCALE);
                let inside = (QUIET..QUIET + modules).contains(&mx)
                    && (QUIET..QUIET + modules).contains(&my);
                let module = buf[my * SCALE * side + mx * SCALE];
                let expected = if inside { module } else { 255 };
                assert_eq!(buf[y * side + x], expected, "pixel ({x}, {y})");
            }
        }
        // A QR reader (not the encoder) reads the image back.
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| buf[y * side + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let (meta, content) = grids[0].decode().unwrap();
        assert_eq!(content, text);
        assert_eq!(meta.ecc_level, 0, "error correction level M");
    }

    #[test]
    fn refuses_what_cannot_fit() {
        assert!(matches!(png(&"x".repeat(5000)), Err(QrError::TooLong(_))));
    }
}
