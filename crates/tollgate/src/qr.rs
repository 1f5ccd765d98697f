//! QR codes as PNG images (for the Connect screen's subscription URL).
//!
//! Rendered from the code's module matrix with a 4-module quiet zone, each module a square of
//! pixels, 8-bit grayscale — small files, no image library.

use qrcode::{Color, QrCode};

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
    let code = QrCode::new(text.as_bytes()).map_err(|e| QrError::TooLong(e.to_string()))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules, i / modules);
        for dy in 0..SCALE {
            let row = ((my + QUIET) * SCALE + dy) * side;
            let start = row + (mx + QUIET) * SCALE;
            pixels[start..start + SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).map_err(|e| QrError::Png(e.to_string()))?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| QrError::Png(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_png_of_the_right_size() {
        let bytes = png("https://vpn.example.com/sub/AbCdEfGhIjKlMnOpQrStUvWxYz012345").unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % SCALE, 0);
        // The quiet zone is light; the top-left finder pattern starts dark right after it.
        let mut reader = reader;
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        let side = info_width(&bytes);
        assert_eq!(buf[0], 255);
        let corner = QUIET * SCALE * side + QUIET * SCALE;
        assert_eq!(buf[corner], 0);
    }

    fn info_width(bytes: &[u8]) -> usize {
        png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap()
            .info()
            .width as usize
    }

    #[test]
    fn refuses_what_cannot_fit() {
        assert!(matches!(png(&"x".repeat(5000)), Err(QrError::TooLong(_))));
    }
}
