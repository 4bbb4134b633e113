//! GPT-2's reversible byte ↔ printable-character map.
//!
//! Why: byte-level BPE vocabularies store every token as text in which each raw byte is
//! replaced by one printable Unicode character (space → `Ġ`, newline → `Ċ`, …); encoding
//! maps bytes to those characters and decoding maps them back.

/// The character standing for each byte (OpenAI's `bytes_to_unicode`).
pub(crate) fn byte_to_char() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(b)
        } else {
            next += 1;
            next - 1
        };
        // Codes are below 256 + 256, all valid scalar values.
        map[usize::from(b)] = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    map
}

/// The byte a character stands for, if it is one of the 256 map characters.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    match code {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(code as u8),
        0x100..=0x143 => {
            // The n-th non-printable byte (in byte order) maps to 256 + n.
            let n = (code - 0x100) as usize;
            (0..=255u8)
                .filter(|b| !matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF))
                .nth(n)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_a_bijection_matching_gpt2() {
        let map = byte_to_char();
        assert_eq!(map[usize::from(b' ')], 'Ġ');
        assert_eq!(map[usize::from(b'\n')], 'Ċ');
        assert_eq!(map[usize::from(b'\t')], 'ĉ');
        assert_eq!(map[usize::from(b'a')], 'a');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(map[usize::from(b)]), Some(b));
        }
        assert_eq!(char_to_byte('世'), None);
    }
}
