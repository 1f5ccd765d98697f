//! Uploaded photos and documents: storage, ids, and image dimensions.
//!
//! Why this exists: bots send photos (QR codes, banners) by uploading bytes, by URL, or by
//! re-using a `file_id`. The emulator keeps uploaded bytes so the web page can show them and a
//! test can inspect them, hands out `file_id`s that can be sent again, and rejects bytes that are
//! not an image the way Telegram does (`IMAGE_PROCESS_FAILED`). The store is bounded by total
//! bytes; the oldest photos are evicted first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::rng::Rng;

/// A stored photo.
#[derive(Debug)]
pub struct StoredFile {
    /// Id to resend or download the file.
    pub file_id: String,
    /// Id derived from the bytes.
    pub file_unique_id: String,
    /// The bytes (empty for photos sent by URL, which the emulator does not fetch).
    pub data: Bytes,
    /// The URL for photos sent by URL.
    pub url: Option<String>,
    /// Content type for serving.
    pub mime: &'static str,
    /// Width in pixels (0 when unknown).
    pub width: u32,
    /// Height in pixels (0 when unknown).
    pub height: u32,
}

/// Bounded store of photos, keyed by `file_id`.
#[derive(Debug)]
pub struct FileStore {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Arc<StoredFile>>,
    order: VecDeque<String>,
    total_bytes: usize,
}

impl FileStore {
    /// An empty store holding at most `max_bytes` of photo data.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    /// Stores uploaded bytes. `None` if they are not a PNG, JPEG, GIF or WebP image.
    pub fn store_upload(&self, rng: &Rng, data: Bytes) -> Option<Arc<StoredFile>> {
        let (mime, width, height) = sniff_image(&data)?;
        let file = Arc::new(StoredFile {
            file_id: format!("AgACAgIAAxkDAAI{}", rng.token(40)),
            file_unique_id: unique_id(&data),
            data,
            url: None,
            mime,
            width,
            height,
        });
        self.insert(file.clone());
        Some(file)
    }

    /// Stores an uploaded document as it is (any bytes).
    pub fn store_document(&self, rng: &Rng, data: Bytes) -> Arc<StoredFile> {
        let file = Arc::new(StoredFile {
            file_id: format!("BQACAgIAAxkDAAI{}", rng.token(40)),
            file_unique_id: unique_id(&data),
            data,
            url: None,
            mime: "application/octet-stream",
            width: 0,
            height: 0,
        });
        self.insert(file.clone());
        file
    }

    /// Records a photo given by URL (the emulator has no network, so the bytes are not fetched).
    pub fn store_url(&self, rng: &Rng, url: &str) -> Arc<StoredFile> {
        let file = Arc::new(StoredFile {
            file_id: format!("AgACAgQAAxkDAAI{}", rng.token(40)),
            file_unique_id: unique_id(url.as_bytes()),
            data: Bytes::new(),
            url: Some(url.to_owned()),
            mime: "application/octet-stream",
            width: 0,
            height: 0,
        });
        self.insert(file.clone());
        file
    }

    /// The file with this id, if still stored.
    pub fn get(&self, file_id: &str) -> Option<Arc<StoredFile>> {
        self.lock().by_id.get(file_id).cloned()
    }

    fn insert(&self, file: Arc<StoredFile>) {
        let mut inner = self.lock();
        inner.total_bytes += file.data.len();
        inner.order.push_back(file.file_id.clone());
        inner.by_id.insert(file.file_id.clone(), file);
        // Bound both the bytes and the number of entries (URL photos have no bytes).
        while (inner.total_bytes > self.max_bytes || inner.order.len() > 100_000)
            && inner.order.len() > 1
        {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(evicted) = inner.by_id.remove(&oldest) {
                inner.total_bytes -= evicted.data.len();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn unique_id(data: &[u8]) -> String {
    // FNV-1a, printed in the alphabet of file ids: same bytes, same id.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("AQAD{hash:016x}")
}

/// Recognises PNG, JPEG, GIF and WebP and reads their dimensions.
pub fn sniff_image(data: &[u8]) -> Option<(&'static str, u32, u32)> {
    let be16 = |i: usize| -> Option<u32> {
        Some(u32::from(u16::from_be_bytes([
            *data.get(i)?,
            *data.get(i + 1)?,
        ])))
    };
    let le16 = |i: usize| -> Option<u32> {
        Some(u32::from(u16::from_le_bytes([
            *data.get(i)?,
            *data.get(i + 1)?,
        ])))
    };
    let be32 = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes([
            *data.get(i)?,
            *data.get(i + 1)?,
            *data.get(i + 2)?,
            *data.get(i + 3)?,
        ]))
    };
    let le24 = |i: usize| -> Option<u32> {
        Some(
            u32::from(*data.get(i)?)
                | u32::from(*data.get(i + 1)?) << 8
                | u32::from(*data.get(i + 2)?) << 16,
        )
    };
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(("image/png", be32(16)?, be32(20)?));
    }
    if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        return Some(("image/gif", le16(6)?, le16(8)?));
    }
    if data.starts_with(&[0xff, 0xd8]) {
        let mut i = 2;
        while i + 9 < data.len() {
            if data[i] != 0xff {
                i += 1;
                continue;
            }
            let marker = data[i + 1];
            if marker == 0xff {
                i += 1;
                continue;
            }
            let is_sof = (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
            if is_sof {
                return Some(("image/jpeg", be16(i + 7)?, be16(i + 5)?));
            }
            if marker == 0xd8 || (0xd0..=0xd7).contains(&marker) || marker == 0x01 {
                i += 2;
                continue;
            }
            i += 2 + usize::try_from(be16(i + 2)?).ok()?;
        }
        return None;
    }
    if data.len() >= 30 && data.starts_with(b"RIFF") && &data[8..12] == b"WEBP" {
        return match &data[12..16] {
            b"VP8X" => Some(("image/webp", le24(24)? + 1, le24(27)? + 1)),
            b"VP8 " => Some(("image/webp", le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let bits = u32::from_le_bytes([data[21], data[22], data[23], data[24]]);
                Some((
                    "image/webp",
                    (bits & 0x3fff) + 1,
                    ((bits >> 14) & 0x3fff) + 1,
                ))
            }
            _ => None,
        };
    }
    None
}

/// A valid 1×1 PNG, handy for tests and examples.
pub const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_dimensions() {
        assert_eq!(sniff_image(TINY_PNG), Some(("image/png", 1, 1)));
        assert_eq!(sniff_image(b"not an image"), None);
    }

    #[test]
    fn store_is_bounded_by_bytes() {
        let rng = Rng::new(1);
        let store = FileStore::new(TINY_PNG.len() * 2);
        let first = store
            .store_upload(&rng, Bytes::from_static(TINY_PNG))
            .unwrap();
        store
            .store_upload(&rng, Bytes::from_static(TINY_PNG))
            .unwrap();
        store
            .store_upload(&rng, Bytes::from_static(TINY_PNG))
            .unwrap();
        assert!(store.get(&first.file_id).is_none());
    }

    #[test]
    fn same_bytes_same_unique_id() {
        let rng = Rng::new(1);
        let store = FileStore::new(1 << 20);
        let a = store
            .store_upload(&rng, Bytes::from_static(TINY_PNG))
            .unwrap();
        let b = store
            .store_upload(&rng, Bytes::from_static(TINY_PNG))
            .unwrap();
        assert_ne!(a.file_id, b.file_id);
        assert_eq!(a.file_unique_id, b.file_unique_id);
    }
}
