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

impl ContentType {
    /// What `bytes` are, by their content alone.
    pub fn sniff(bytes: &[u8]) -> Result<Self, AttachmentError> {
        if bytes.is_empty() {
            return Err(AttachmentError::Empty);
        }
        if bytes.len() > MAX_ATTACHMENT_BYTES {
            return Err(AttachmentError::TooLarge);
        }
        // infer knows some texts too (HTML, XML, shell scripts): those are refused, not
        // taken for plain text, so a browser that ignored the headers still would not run them.
        match infer::get(bytes).map(|kind| kind.mime_type()) {
            Some("image/png") => Ok(Self::Png),
            Some("image/jpeg") => Ok(Self::Jpeg),
            Some("image/gif") => Ok(Self::Gif),
            Some("image/webp") => Ok(Self::Webp),
            Some("application/pdf") => Ok(Self::Pdf),
            Some(_) => Err(AttachmentError::Unsupported),
            None if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() => Ok(Self::Text),
            None => Err(AttachmentError::Unsupported),
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
