//! `Op`: an operation a person can ask for at upload (rotate, grayscale), applied in the order
//! given. The engine (`resize`) takes them as input; the page learns their names from
//! `/api/config`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Rotate90,
    Rotate180,
    Rotate270,
    Grayscale,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Rotate90, Op::Rotate180, Op::Rotate270, Op::Grayscale];

    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Rotate90 => "rotate90",
            Op::Rotate180 => "rotate180",
            Op::Rotate270 => "rotate270",
            Op::Grayscale => "grayscale",
        }
    }

    /// A comma list as the upload form sends it, in order; blanks are ignored.
    pub fn parse_list(field: &str) -> Result<Vec<Op>, UnknownOp> {
        field
            .split(',')
            .map(str::trim)
            .filter(|op| !op.is_empty())
            .map(str::parse)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation '{0}' (expected rotate90, rotate180, rotate270, grayscale)")]
pub struct UnknownOp(pub String);

impl FromStr for Op {
    type Err = UnknownOp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Op::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOp(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_in_order_and_reject_unknown_names() {
        assert_eq!(
            Op::parse_list(" rotate90, grayscale,,"),
            Ok(vec![Op::Rotate90, Op::Grayscale])
        );
        assert_eq!(Op::parse_list(""), Ok(vec![]));
        assert_eq!(
            Op::parse_list("rotate90,sepia").map_err(|e| e.to_string()),
            Err(
                "unknown operation 'sepia' (expected rotate90, rotate180, rotate270, grayscale)"
                    .into()
            )
        );
    }
}
