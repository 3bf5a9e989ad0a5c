//! Attachments: what a ticket accepts as a file. The type is read from the bytes themselves
//! (their magic numbers), never from what the client claims, and only a few harmless types
//! pass: images a browser shows, PDF, and plain UTF-8 text.

/// The largest file a ticket takes.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;
/// The longest file name kept (in characters); a longer one is cut.
pub const MAX_FILE_NAME: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttachmentError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is over {max} bytes", max = MAX_ATTACHMENT_BYTES)]
    TooLarge,
    #[error("the file is none of PNG, JPEG, GIF, WebP, PDF or UTF-8 text")]
    Unsupported,
    #[error("the body is longer than its Content-Length")]
    LongerThanDeclared,
}

/// A type an attachment may have, as sniffed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Text,
}

/// How many first bytes of a file its type is read from.
const SNIFF_LEN: usize = 8 * 1024;

impl ContentType {
    /// What `bytes` are, by their content alone.
    pub fn sniff(bytes: &[u8]) -> Result<Self, AttachmentError> {
        let mut sniffer = Sniffer::default();
        sniffer.feed(bytes)?;
        sniffer.finish()
    }

    /// The type a file's first bytes (`head`) say: `Text` for whatever infer does not know,
    /// which the text check then confirms or refuses byte by byte.
    fn of_head(head: &[u8]) -> Result<Self, AttachmentError> {
        // infer knows some texts too (HTML, XML, shell scripts): those are refused, not
        // taken for plain text, so a browser that ignored the headers still would not run them.
        match infer::get(head).map(|kind| kind.mime_type()) {
            Some("image/png") => Ok(Self::Png),
            Some("image/jpeg") => Ok(Self::Jpeg),
            Some("image/gif") => Ok(Self::Gif),
            Some("image/webp") => Ok(Self::Webp),
            Some("application/pdf") => Ok(Self::Pdf),
            Some(_) => Err(AttachmentError::Unsupported),
            None => Ok(Self::Text),
        }
    }

    /// The media type served with the file.
    pub fn as_mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Pdf => "application/pdf",
            Self::Text => "text/plain; charset=utf-8",
        }
    }

    pub fn parse(mime: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Gif, Self::Webp, Self::Pdf, Self::Text]
            .into_iter()
            .find(|kind| kind.as_mime() == mime)
    }
}

/// Reads a file as it streams past, holding none of it but its first few KiB: its type from
/// those first bytes, its size against [`MAX_ATTACHMENT_BYTES`], and, for text, that every
/// byte is UTF-8 and none is NUL.
#[derive(Debug, Default)]
pub struct Sniffer {
    /// The first bytes, until the type is known.
    head: Vec<u8>,
    kind: Option<ContentType>,
    size: u64,
    text: TextCheck,
}

impl Sniffer {
    /// Takes the next bytes of the file.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), AttachmentError> {
        self.size += bytes.len() as u64;
        if self.size > MAX_ATTACHMENT_BYTES as u64 {
            return Err(AttachmentError::TooLarge);
        }
        match self.kind {
            Some(ContentType::Text) => self.text.feed(bytes),
            Some(_) => Ok(()),
            None => {
                self.head.extend_from_slice(bytes);
                if self.head.len() >= SNIFF_LEN { self.decide() } else { Ok(()) }
            }
        }
    }

    /// The bytes taken so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's type, once all of it was fed.
    pub fn finish(mut self) -> Result<ContentType, AttachmentError> {
        if self.size == 0 {
            return Err(AttachmentError::Empty);
        }
        if self.kind.is_none() {
            self.decide()?;
        }
        match self.kind {
            Some(ContentType::Text) if !self.text.is_complete() => Err(AttachmentError::Unsupported),
            Some(kind) => Ok(kind),
            None => Err(AttachmentError::Unsupported),
        }
    }

    fn decide(&mut self) -> Result<(), AttachmentError> {
        let head = std::mem::take(&mut self.head);
        let kind = ContentType::of_head(&head)?;
        if kind == ContentType::Text {
            self.text.feed(&head)?;
        }
        self.kind = Some(kind);
        Ok(())
    }
}

/// UTF-8 without NUL, checked piece by piece: a sequence cut between two pieces is carried.
#[derive(Debug, Default)]
struct TextCheck {
    /// The start of a sequence the last piece cut (at most 3 bytes).
    carried: Vec<u8>,
}

impl TextCheck {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), AttachmentError> {
        if bytes.contains(&0) {
            return Err(AttachmentError::Unsupported);
        }
        let joined;
        let piece = if self.carried.is_empty() {
            bytes
        } else {
            joined = [std::mem::take(&mut self.carried).as_slice(), bytes].concat();
            &joined
        };
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            // Cut short at the end, not wrong: the next piece completes it.
            Err(error) if error.error_len().is_none() => {
                self.carried = piece[error.valid_up_to()..].to_vec();
                Ok(())
            }
            Err(_) => Err(AttachmentError::Unsupported),
        }
    }

    fn is_complete(&self) -> bool {
        self.carried.is_empty()
    }
}

/// The name to keep for an uploaded file: its last path segment (a client may send a whole
/// path), without control characters, at most [`MAX_FILE_NAME`] characters; `attachment` when
/// nothing is left.
pub fn file_name(sent: Option<&str>) -> String {
    let last = sent.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last.chars().filter(|c| !c.is_control()).take(MAX_FILE_NAME).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." { "attachment".to_owned() } else { clean.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

    #[test]
    fn the_allowed_types_are_recognised_by_their_bytes() {
        assert_eq!(ContentType::sniff(PNG), Ok(ContentType::Png));
        assert_eq!(ContentType::sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), Ok(ContentType::Jpeg));
        assert_eq!(ContentType::sniff(b"GIF89a\x01\0\x01\0"), Ok(ContentType::Gif));
        assert_eq!(ContentType::sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Ok(ContentType::Webp));
        assert_eq!(ContentType::sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), Ok(ContentType::Pdf));
        assert_eq!(ContentType::sniff("Grüße, the parcel is late.\n".as_bytes()), Ok(ContentType::Text));
    }

    #[test]
    fn executables_markup_binary_and_empty_files_are_refused() {
        assert_eq!(
            ContentType::sniff(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"),
            Err(AttachmentError::Unsupported)
        );
        assert_eq!(ContentType::sniff(b"MZ\x90\0\x03\0\0\0"), Err(AttachmentError::Unsupported));
        assert_eq!(ContentType::sniff(b"#!/bin/sh\nrm -rf /\n"), Err(AttachmentError::Unsupported));
        assert_eq!(
            ContentType::sniff(b"<html><script>alert(1)</script></html>"),
            Err(AttachmentError::Unsupported)
        );
        assert_eq!(ContentType::sniff(b"text with a \0 NUL"), Err(AttachmentError::Unsupported));
        assert_eq!(ContentType::sniff(b"\xc3\x28 not UTF-8"), Err(AttachmentError::Unsupported));
        assert_eq!(ContentType::sniff(b""), Err(AttachmentError::Empty));
        assert_eq!(ContentType::sniff(&vec![b'a'; MAX_ATTACHMENT_BYTES + 1]), Err(AttachmentError::TooLarge));
        assert_eq!(ContentType::sniff(&vec![b'a'; MAX_ATTACHMENT_BYTES]), Ok(ContentType::Text));
    }

    #[test]
    fn a_file_fed_in_pieces_is_judged_as_a_whole() {
        let text = "Grüße ".repeat(5_000);
        for piece in [1, 2, 3, 7, 4096, 100_000] {
            let mut sniffer = Sniffer::default();
            for part in text.as_bytes().chunks(piece) {
                sniffer.feed(part).expect("text");
            }
            assert_eq!(sniffer.finish(), Ok(ContentType::Text), "pieces of {piece}");
        }
        // Past the first bytes a NUL, broken UTF-8 or a cut sequence still refuses the text.
        for tail in [&b"\0"[..], &b"\xc3\x28"[..], &b"\xc3"[..]] {
            let mut sniffer = Sniffer::default();
            sniffer.feed(text.as_bytes()).expect("text");
            let fed = sniffer.feed(tail);
            assert!(fed.is_err() || sniffer.finish() == Err(AttachmentError::Unsupported), "{tail:?}");
        }
        let mut png = Sniffer::default();
        png.feed(&PNG[..3]).expect("a start");
        png.feed(&PNG[3..]).expect("the rest");
        png.feed(&[0; 20_000]).expect("an image holds any bytes");
        assert_eq!(png.finish(), Ok(ContentType::Png));
        let mut big = Sniffer::default();
        big.feed(&vec![b'a'; MAX_ATTACHMENT_BYTES]).expect("at the limit");
        assert_eq!(big.feed(b"a"), Err(AttachmentError::TooLarge));
        assert_eq!(Sniffer::default().finish(), Err(AttachmentError::Empty));
    }

    #[test]
    fn a_media_type_reads_back() {
        for kind in [ContentType::Png, ContentType::Pdf, ContentType::Text] {
            assert_eq!(ContentType::parse(kind.as_mime()), Some(kind));
        }
        assert_eq!(ContentType::parse("text/html"), None);
    }

    #[test]
    fn a_file_name_keeps_its_last_segment_without_control_characters() {
        assert_eq!(file_name(Some("C:\\Users\\ada\\receipt.pdf")), "receipt.pdf");
        assert_eq!(file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(file_name(Some("bad\r\nname.txt")), "badname.txt");
        assert_eq!(file_name(Some("..")), "attachment");
        assert_eq!(file_name(None), "attachment");
        assert_eq!(file_name(Some(&"é".repeat(300))).chars().count(), MAX_FILE_NAME);
    }
}
