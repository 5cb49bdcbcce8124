//! `FileName`: an uploaded file's name as the gallery keeps it. The name comes from the client
//! and is sent back in every listing, event and notification, so it is cleaned once, on the
//! way in: bounded in length, and stripped of characters that could forge text around it.

use std::fmt;

/// A cleaned file name: at most `FileName::MAX_BYTES` bytes of UTF-8, no control characters,
/// no bidirectional override/isolate/mark characters, no leading or trailing whitespace, never
/// empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Longest name kept, in bytes (what most file systems allow for one name).
    pub const MAX_BYTES: usize = 255;
    /// What a file with no usable name is called.
    pub const UNNAMED: &'static str = "unnamed";

    /// Cleans a client-supplied name: drops control characters (a newline would forge a line
    /// in a log or an e-mail) and bidi controls (U+202E makes "gpj.exe" read as "exe.jpg"),
    /// trims whitespace, cuts to `MAX_BYTES` at a character boundary, and names what is left
    /// empty "unnamed".
    pub fn clean(raw: &str) -> FileName {
        let kept: String = raw.chars().filter(|&c| !unwanted(c)).collect();
        let trimmed = kept.trim();
        let mut end = trimmed.len().min(Self::MAX_BYTES);
        while !trimmed.is_char_boundary(end) {
            end -= 1;
        }
        // Cutting may leave whitespace at the new end.
        let cut = trimmed[..end].trim_end();
        if cut.is_empty() {
            FileName(Self::UNNAMED.to_owned())
        } else {
            FileName(cut.to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional formatting characters: the marks
/// (U+200E, U+200F, U+061C), embeddings and overrides (U+202A–U+202E) and isolates
/// (U+2066–U+2069).
fn unwanted(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<FileName> for String {
    fn from(name: FileName) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::FileName;

    #[test]
    fn ordinary_names_are_kept() {
        for name in [
            "cat.jpg",
            "Férias 2024 – praia.JPG",
            "日本の写真.png",
            "a b.webp",
        ] {
            assert_eq!(FileName::clean(name).as_str(), name);
        }
    }

    #[test]
    fn controls_and_bidi_characters_are_removed() {
        assert_eq!(
            FileName::clean("evil\u{202E}gpj.exe\n").as_str(),
            "evilgpj.exe"
        );
        assert_eq!(
            FileName::clean("a\u{0}b\u{7F}c\u{9B}d\r\te").as_str(),
            "abcde"
        );
        let bidi = "\u{200E}\u{200F}\u{061C}\u{202A}\u{202B}\u{202C}\u{202D}\u{2066}\u{2067}\u{2068}\u{2069}";
        assert_eq!(FileName::clean(&format!("x{bidi}y")).as_str(), "xy");
    }

    #[test]
    fn whitespace_is_trimmed_and_empty_is_unnamed() {
        assert_eq!(
            FileName::clean("  photo.jpg \u{3000}").as_str(),
            "photo.jpg"
        );
        for empty in ["", "   ", "\n\t", "\u{202E}\u{2066}", " \u{0} "] {
            assert_eq!(FileName::clean(empty).as_str(), "unnamed", "{empty:?}");
        }
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let long = "a".repeat(1 << 20);
        assert_eq!(FileName::clean(&long).as_str().len(), 255);
        // 'é' is two bytes: byte 255 is mid-character, so the cut lands at 254.
        let accented = "é".repeat(300);
        let cut = FileName::clean(&accented);
        assert_eq!(cut.as_str().len(), 254);
        assert!(cut.as_str().ends_with('é'));
        let wide = "日".repeat(100); // 3 bytes each
        assert_eq!(FileName::clean(&wide).as_str().len(), 255);
        let emoji = format!("ab{}", "📷".repeat(100)); // 2 + 4n: 255 falls mid-emoji
        assert_eq!(FileName::clean(&emoji).as_str().len(), 254);
    }
}
