//! What the fuzz targets share.

/// Both checksummed formats (plan, predictor/stats) start with a 24-byte header: magic
/// (8), version (4), payload length (8), CRC-32 of the payload (4). When the fuzzer's
/// control byte asks for it, the length and CRC are rewritten to match the mutated
/// payload, so mutations reach the payload parsers instead of stopping at the checksum.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= 24 {
        let len = (bytes.len() - 24) as u64;
        bytes[12..20].copy_from_slice(&len.to_le_bytes());
        let crc = crc32fast::hash(&bytes[24..]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    }
}
