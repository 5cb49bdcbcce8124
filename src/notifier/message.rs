//! What the uploader is told, in English or Brazilian Portuguese: the original file's name,
//! every operation done and the variants made (as `GALLERY_VARIANTS` named them, at their
//! size), or why it failed. Pure functions, so every sentence is tested as is.

use crate::domain::{Event, EventKind, Lang, Op, Photo};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
}

fn op_phrase(op: Op, lang: Lang) -> &'static str {
    match (lang, op) {
        (Lang::En, Op::Rotate90) => "rotated 90°",
        (Lang::En, Op::Rotate180) => "rotated 180°",
        (Lang::En, Op::Rotate270) => "rotated 270°",
        (Lang::En, Op::Grayscale) => "converted to black and white",
        (Lang::PtBr, Op::Rotate90) => "rotacionado 90°",
        (Lang::PtBr, Op::Rotate180) => "rotacionado 180°",
        (Lang::PtBr, Op::Rotate270) => "rotacionado 270°",
        (Lang::PtBr, Op::Grayscale) => "transformado em preto e branco",
    }
}

/// "a", "a and b", "a, b and c" (or "e" in Portuguese).
fn join(phrases: &[&str], lang: Lang) -> String {
    let and = if lang == Lang::En { " and " } else { " e " };
    match phrases {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{}{and}{last}", init.join(", ")),
    }
}

/// The variants made, smallest first: "thumbnail 320×240 and preview 1280×960". The two
/// default names are said in the reader's language; other names as the operator wrote them.
fn variants_phrase(photo: &Photo, lang: Lang) -> String {
    let mut variants: Vec<_> = photo.variants.iter().collect();
    variants.sort_by_key(|(name, info)| (u64::from(info.width) * u64::from(info.height), *name));
    let phrases: Vec<String> = variants
        .into_iter()
        .map(|(name, info)| {
            let name = match (name.as_str(), lang) {
                ("thumb", Lang::En) => "thumbnail",
                ("thumb", Lang::PtBr) => "miniatura",
                ("preview", Lang::PtBr) => "prévia",
                (other, _) => other,
            };
            format!("{name} {}×{}", info.width, info.height)
        })
        .collect();
    let phrases: Vec<&str> = phrases.iter().map(String::as_str).collect();
    join(&phrases, lang)
}

/// The message for a finished photo; `None` for events nobody is told about.
pub fn render(event: &Event, lang: Lang) -> Option<Message> {
    let name = &event.photo.filename;
    let done: Vec<&str> = event
        .photo
        .ops
        .iter()
        .map(|op| op_phrase(*op, lang))
        .collect();
    let message = match (event.kind, lang) {
        (EventKind::Done, Lang::En) => {
            let what = if done.is_empty() {
                "was processed".to_owned()
            } else {
                format!("was {}", join(&done, lang))
            };
            let text = match variants_phrase(&event.photo, lang) {
                made if made.is_empty() => format!("{name} {what}."),
                made => format!("{name} {what}. Resized versions are ready: {made}."),
            };
            Message {
                subject: format!("Photo ready: {name}"),
                text,
            }
        }
        (EventKind::Done, Lang::PtBr) => {
            let what = if done.is_empty() {
                "foi processado".to_owned()
            } else {
                format!("foi {}", join(&done, lang))
            };
            let text = match variants_phrase(&event.photo, lang) {
                made if made.is_empty() => format!("O arquivo {name} {what}."),
                made => format!(
                    "O arquivo {name} {what}. As versões redimensionadas estão prontas: {made}."
                ),
            };
            Message {
                subject: format!("Foto pronta: {name}"),
                text,
            }
        }
        (EventKind::Failed, Lang::En) => Message {
            subject: format!("Photo failed: {name}"),
            text: format!("{name} could not be processed: {}.", reason(event)),
        },
        (EventKind::Failed, Lang::PtBr) => Message {
            subject: format!("Falha na foto: {name}"),
            text: format!(
                "O arquivo {name} não pôde ser processado: {}.",
                reason(event)
            ),
        },
        (EventKind::Queued | EventKind::Processing | EventKind::Deleted, _) => return None,
    };
    Some(message)
}

fn reason(event: &Event) -> &str {
    event
        .photo
        .error
        .as_deref()
        .unwrap_or("unknown error")
        .trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PhotoId, Status, VariantInfo};

    fn event(kind: EventKind, ops: Vec<Op>, error: Option<&str>) -> Event {
        let photo = Photo {
            id: PhotoId::new(),
            filename: "perfil.jpg".into(),
            content_type: "image/jpeg".into(),
            bytes: 1,
            sha256: None,
            width: 1,
            height: 1,
            status: if kind == EventKind::Failed {
                Status::Failed
            } else {
                Status::Done
            },
            ops,
            created_at: chrono::Utc::now(),
            error: error.map(str::to_owned),
            attempts: 1,
            deliveries: 1,
            variants: [("preview", 1280, 960), ("thumb", 320, 240)]
                .into_iter()
                .map(|(name, width, height)| {
                    let info = VariantInfo {
                        width,
                        height,
                        content_type: "image/jpeg".into(),
                        bytes: 1,
                        digest: None,
                    };
                    (name.to_owned(), info)
                })
                .collect(),
            lane: Default::default(),
            notify: Default::default(),
            owner: None,
        };
        Event { kind, photo }
    }

    fn text(kind: EventKind, ops: Vec<Op>, lang: Lang) -> String {
        render(
            &event(
                kind,
                ops,
                Some("image is truncated or corrupt: unexpected end"),
            ),
            lang,
        )
        .expect("a message")
        .text
    }

    #[test]
    fn each_operation_is_named() {
        assert_eq!(
            text(EventKind::Done, vec![Op::Rotate90], Lang::En),
            "perfil.jpg was rotated 90°. Resized versions are ready: thumbnail 320×240 and preview 1280×960."
        );
        assert_eq!(
            text(EventKind::Done, vec![Op::Rotate90], Lang::PtBr),
            "O arquivo perfil.jpg foi rotacionado 90°. As versões redimensionadas estão prontas: miniatura 320×240 e prévia 1280×960."
        );
        assert_eq!(
            text(EventKind::Done, vec![Op::Grayscale], Lang::PtBr),
            "O arquivo perfil.jpg foi transformado em preto e branco. As versões redimensionadas estão prontas: miniatura 320×240 e prévia 1280×960."
        );
        assert_eq!(
            text(EventKind::Done, vec![Op::Rotate180, Op::Rotate270, Op::Grayscale], Lang::En),
            "perfil.jpg was rotated 180°, rotated 270° and converted to black and white. Resized versions are ready: thumbnail 320×240 and preview 1280×960."
        );
        assert_eq!(
            text(EventKind::Done, vec![Op::Rotate180, Op::Grayscale], Lang::PtBr),
            "O arquivo perfil.jpg foi rotacionado 180° e transformado em preto e branco. As versões redimensionadas estão prontas: miniatura 320×240 e prévia 1280×960."
        );
    }

    #[test]
    fn variants_are_named_as_configured_smallest_first() {
        let mut made = event(EventKind::Done, vec![], None);
        made.photo.variants.remove("thumb");
        let square = VariantInfo {
            width: 96,
            height: 96,
            content_type: "image/webp".into(),
            bytes: 1,
            digest: None,
        };
        made.photo.variants.insert("square".into(), square);
        let text = |event: &Event, lang| render(event, lang).expect("a message").text;
        assert_eq!(
            text(&made, Lang::En),
            "perfil.jpg was processed. Resized versions are ready: square 96×96 and preview 1280×960."
        );
        assert_eq!(
            text(&made, Lang::PtBr),
            "O arquivo perfil.jpg foi processado. As versões redimensionadas estão prontas: square 96×96 e prévia 1280×960."
        );
        made.photo.variants.clear();
        assert_eq!(text(&made, Lang::En), "perfil.jpg was processed.");
    }

    #[test]
    fn no_operation_and_failure_read_well() {
        assert_eq!(
            text(EventKind::Done, vec![], Lang::En),
            "perfil.jpg was processed. Resized versions are ready: thumbnail 320×240 and preview 1280×960."
        );
        assert_eq!(
            text(EventKind::Failed, vec![Op::Rotate90], Lang::En),
            "perfil.jpg could not be processed: image is truncated or corrupt: unexpected end."
        );
        assert_eq!(
            text(EventKind::Failed, vec![], Lang::PtBr),
            "O arquivo perfil.jpg não pôde ser processado: image is truncated or corrupt: unexpected end."
        );
        let subject =
            render(&event(EventKind::Failed, vec![], None), Lang::PtBr).map(|m| m.subject);
        assert_eq!(subject.as_deref(), Some("Falha na foto: perfil.jpg"));
        assert!(render(&event(EventKind::Queued, vec![], None), Lang::En).is_none());
        assert_eq!("pt-BR".parse::<Lang>(), Ok(Lang::PtBr));
        assert!("fr".parse::<Lang>().is_err());
    }
}
