//! `VariantSpec`: a resized copy every photo gets, by name and longest side. The list is part
//! of the vocabulary (object keys, API URLs, the page and the notifier's sentences name them),
//! so it lives here and nowhere else; the engine takes it as input.

use serde::Serialize;

/// One variant to make: the longest side is scaled down to `max_side`, never up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantSpec {
    pub name: String,
    pub max_side: u32,
}

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
}
