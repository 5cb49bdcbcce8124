//! `VariantSpec`: a resized copy every photo gets, by name and longest side. The list is part
//! of the vocabulary (object keys, API URLs, the page and the notifier's sentences name them),
//! so it lives here and nowhere else; the engine takes it as input. The operator sets it
//! (`GALLERY_VARIANTS`, parsed by `VariantSpec::parse_list`); `standard` is the default.

use serde::Serialize;

use super::Photo;

/// One variant to make: the longest side is scaled down to `max_side`, never up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantSpec {
    pub name: String,
    pub max_side: u32,
}

/// The longest side a variant may ask for: well past any screen, and what keeps a variant's
/// own decode budget sane.
pub const MAX_SIDE: u32 = 16384;
/// The longest variant name: it is part of object keys and URLs.
const MAX_NAME: usize = 32;

impl VariantSpec {
    pub fn new(name: &str, max_side: u32) -> Self {
        VariantSpec {
            name: name.to_owned(),
            max_side,
        }
    }

    /// The variants every photo gets, largest first: `preview` for the lightbox, `thumb` for
    /// the grid.
    pub fn standard() -> Vec<VariantSpec> {
        vec![
            VariantSpec::new("preview", 1280),
            VariantSpec::new("thumb", 320),
        ]
    }

    /// The list as `GALLERY_VARIANTS` spells it: `name:max_side`, comma-separated
    /// (`thumb:320,preview:1280`), in any order; answered largest first, as the engine wants
    /// it. Names are 1 to 32 of `a-z 0-9 _ -`, each once, and not `original` (the original
    /// is stored beside the variants under that key); sides are 1 to `MAX_SIDE` pixels.
    pub fn parse_list(raw: &str) -> Result<Vec<VariantSpec>, String> {
        let mut specs: Vec<VariantSpec> = Vec::new();
        for item in raw
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let Some((name, side)) = item.split_once(':') else {
                return Err(format!(
                    "'{item}' is not name:size (e.g. thumb:320, a name and its longest side in pixels)"
                ));
            };
            let name = name.trim();
            let valid_name = (1..=MAX_NAME).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid_name {
                return Err(format!(
                    "'{name}' is not a variant name (1 to {MAX_NAME} of a-z, 0-9, _ and -)"
                ));
            }
            if name == "original" {
                return Err(
                    "'original' cannot name a variant: the original is kept under it".into(),
                );
            }
            let max_side = side
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|side| (1..=MAX_SIDE).contains(side))
                .ok_or_else(|| {
                    format!("'{item}': the size must be a number of pixels from 1 to {MAX_SIDE}")
                })?;
            if specs.iter().any(|spec| spec.name == name) {
                return Err(format!("'{name}' is named twice"));
            }
            specs.push(VariantSpec::new(name, max_side));
        }
        if specs.is_empty() {
            return Err("no variant given (e.g. thumb:320,preview:1280)".into());
        }
        specs.sort_by(|a, b| b.max_side.cmp(&a.max_side).then(a.name.cmp(&b.name)));
        Ok(specs)
    }

    /// The list as `parse_list` reads it: what `GALLERY_VARIANTS` defaults to.
    pub fn format_list(specs: &[VariantSpec]) -> String {
        specs
            .iter()
            .map(|spec| format!("{}:{}", spec.name, spec.max_side))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether `photo` has this variant as this spec makes it now: recorded, and with the
    /// longest side it would get (the spec's, or the photo's own when that is smaller). A
    /// variant made for another size does not count, so changing a size is reprocessed too.
    pub fn made_for(&self, photo: &Photo) -> bool {
        let wanted = self.max_side.min(photo.width.max(photo.height));
        photo
            .variants
            .get(&self.name)
            .is_some_and(|made| made.width.max(made.height) == wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_read_in_any_order_and_answered_largest_first() {
        assert_eq!(
            VariantSpec::parse_list("thumb:320, preview:1280"),
            Ok(VariantSpec::standard())
        );
        let list = VariantSpec::parse_list("mini:160,preview:1280,thumb:320").expect("valid");
        assert_eq!(
            list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["preview", "thumb", "mini"]
        );
        assert_eq!(
            VariantSpec::parse_list(&VariantSpec::format_list(&list)),
            Ok(list)
        );
    }

    #[test]
    fn a_bad_list_is_refused_saying_why() {
        for (raw, says) in [
            ("", "no variant"),
            ("thumb", "not name:size"),
            ("thumb:abc", "number of pixels"),
            ("thumb:0", "number of pixels"),
            ("thumb:99999", "number of pixels"),
            ("Thumb:320", "not a variant name"),
            ("th/umb:320", "not a variant name"),
            (":320", "not a variant name"),
            ("original:320", "original"),
            ("thumb:320,thumb:640", "named twice"),
        ] {
            let error = VariantSpec::parse_list(raw).expect_err(raw);
            assert!(error.contains(says), "{raw:?}: {error}");
        }
    }
}
