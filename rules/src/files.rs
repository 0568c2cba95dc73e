//! Medical files: what may be uploaded into a bucket, where its object lies, and whether what
//! the store holds is what was declared.
//!
//! Who may upload where is not decided here: that is the row-level security of
//! `storage.objects` (migrations/20261128000400_files.sql), checked as the user. Here is the
//! rest: a file name that is safe as the last segment of an object path, a media type, a size
//! within the bucket's limits (Supabase's `file_size_limit` / `allowed_mime_types`, read from
//! `storage.buckets`), and the object path `<owner folder>/<attachment id>/<file name>`.

use std::fmt::Display;

/// Supabase Storage's default upload limit, which applies when a bucket sets none (50 MB).
pub const GLOBAL_FILE_SIZE_LIMIT: i64 = 50 * 1024 * 1024;
/// The longest file name accepted, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A bucket's limits as `storage.buckets` holds them; `None` means the bucket sets none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BucketLimits {
    pub file_size_limit: Option<i64>,
    pub allowed_mime_types: Option<Vec<String>>,
}

impl BucketLimits {
    /// The largest upload the bucket accepts.
    pub fn max_size(&self) -> i64 {
        self.file_size_limit.filter(|l| *l > 0).map_or(GLOBAL_FILE_SIZE_LIMIT, |l| l.min(GLOBAL_FILE_SIZE_LIMIT))
    }

    /// Supabase's rule: a type is allowed when the bucket lists it, lists its `type/*`, or
    /// lists nothing.
    pub fn allows(&self, content_type: &str) -> bool {
        match &self.allowed_mime_types {
            None => true,
            Some(list) if list.is_empty() => true,
            Some(list) => list.iter().any(|allowed| {
                let allowed = allowed.trim().to_ascii_lowercase();
                match allowed.strip_suffix("/*") {
                    Some(kind) => content_type.split('/').next() == Some(kind),
                    None => allowed == content_type,
                }
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilesError {
    #[error(
        "file_name must be 1 to 255 bytes of letters, digits, spaces and . _ - ( ) + , ! @ =, \
         and must not start with a dot"
    )]
    InvalidFileName,
    #[error("content_type must be a media type such as application/pdf, without parameters")]
    InvalidContentType,
    #[error("size must be at least 1 byte")]
    EmptyFile,
    #[error("size {size} is over the bucket's limit of {limit} bytes")]
    TooLarge { size: i64, limit: i64 },
    #[error("content type {0} is not accepted in this bucket")]
    TypeNotAllowed(String),
}

impl FilesError {
    /// The machine-readable code the companion answers with.
    pub fn code(&self) -> &'static str {
        match self {
            FilesError::InvalidFileName => "invalid_file_name",
            FilesError::InvalidContentType => "invalid_content_type",
            FilesError::EmptyFile => "empty_file",
            FilesError::TooLarge { .. } => "file_too_large",
            FilesError::TypeNotAllowed(_) => "content_type_not_allowed",
        }
    }
}

/// An upload the bucket accepts: the file name as given, the media type normalised (lower
/// case), the size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
}

/// Checks a declared upload against the bucket's limits.
pub fn check_upload(limits: &BucketLimits, file_name: &str, content_type: &str, size: i64) -> Result<Upload, FilesError> {
    if !is_valid_file_name(file_name) {
        return Err(FilesError::InvalidFileName);
    }
    let content_type = normalize_content_type(content_type).ok_or(FilesError::InvalidContentType)?;
    if size < 1 {
        return Err(FilesError::EmptyFile);
    }
    let limit = limits.max_size();
    if size > limit {
        return Err(FilesError::TooLarge { size, limit });
    }
    if !limits.allows(&content_type) {
        return Err(FilesError::TypeNotAllowed(content_type));
    }
    Ok(Upload { file_name: file_name.to_owned(), content_type, size })
}

/// A file name usable as the last segment of an object path in every S3-compatible store and
/// in Supabase Storage (whose keys allow a subset of ASCII): no separators, no control
/// characters, no `.`/`..`, no hidden files.
pub fn is_valid_file_name(name: &str) -> bool {
    (1..=MAX_FILE_NAME_BYTES).contains(&name.len())
        && !name.starts_with('.')
        && name.trim() == name
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b" ._-()+,!@=".contains(&b))
}

/// `type/subtype` in lower case, or `None` when it is not one (parameters such as
/// `; charset=utf-8` are refused: the store compares the header byte for byte).
pub fn normalize_content_type(content_type: &str) -> Option<String> {
    let lower = content_type.trim().to_ascii_lowercase();
    let (kind, subtype) = lower.split_once('/')?;
    // RFC 6838 restricted-name: 1 to 127 characters, starting with a letter or digit.
    let valid = |s: &str| {
        (1..=127).contains(&s.len())
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (valid(kind) && valid(subtype)).then_some(lower)
}

/// The object path of an attachment: `<owner folder>/<attachment id>/<file name>`, the owner
/// being what the bucket's policies read from the first folder (a patient, a consultation, a
/// conversation).
pub fn object_name(folder: impl Display, attachment: impl Display, file_name: &str) -> String {
    format!("{folder}/{attachment}/{file_name}")
}

/// What the store says it holds for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    pub size: i64,
    pub content_type: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredMismatch {
    #[error("the stored object has {stored} bytes, {declared} were declared")]
    Size { declared: i64, stored: i64 },
    #[error("the stored object's content type is {stored}, {declared} was declared")]
    ContentType { declared: String, stored: String },
}

/// Does the stored object match the declared upload (size exactly, media type exactly)?
pub fn verify_stored(declared: &Upload, stored: &Stored<'_>) -> Result<(), StoredMismatch> {
    if stored.size != declared.size {
        return Err(StoredMismatch::Size { declared: declared.size, stored: stored.size });
    }
    let stored_type = stored.content_type.and_then(normalize_content_type);
    if stored_type.as_deref() != Some(declared.content_type.as_str()) {
        return Err(StoredMismatch::ContentType {
            declared: declared.content_type.clone(),
            stored: stored.content_type.unwrap_or("none").to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pdf_only(limit: i64) -> BucketLimits {
        BucketLimits { file_size_limit: Some(limit), allowed_mime_types: Some(vec!["application/pdf".into(), "image/*".into()]) }
    }

    #[test]
    fn lab_result_pdf_within_limit_accepted() {
        let up = check_upload(&pdf_only(1000), "lab result (2026-11).pdf", "Application/PDF", 999).unwrap();
        assert_eq!(up.content_type, "application/pdf");
        assert_eq!(up.file_name, "lab result (2026-11).pdf");
    }

    #[test]
    fn wildcard_type_accepts_the_family_only() {
        assert!(check_upload(&pdf_only(1000), "x.heic", "image/heic", 1).is_ok());
        assert_eq!(
            check_upload(&pdf_only(1000), "x.html", "text/html", 1),
            Err(FilesError::TypeNotAllowed("text/html".into()))
        );
        // `image/*` is not a prefix match on the whole string.
        assert!(check_upload(&pdf_only(1000), "x", "imagex/png", 1).is_err());
    }

    #[test]
    fn size_over_the_bucket_limit_refused() {
        assert_eq!(check_upload(&pdf_only(1000), "a.pdf", "application/pdf", 1001), Err(FilesError::TooLarge { size: 1001, limit: 1000 }));
        assert_eq!(check_upload(&pdf_only(1000), "a.pdf", "application/pdf", 0), Err(FilesError::EmptyFile));
    }

    #[test]
    fn bucket_without_limits_has_supabase_default() {
        let none = BucketLimits::default();
        assert_eq!(none.max_size(), GLOBAL_FILE_SIZE_LIMIT);
        assert!(check_upload(&none, "a.bin", "application/octet-stream", GLOBAL_FILE_SIZE_LIMIT).is_ok());
        assert!(check_upload(&none, "a.bin", "application/octet-stream", GLOBAL_FILE_SIZE_LIMIT + 1).is_err());
    }

    #[test]
    fn path_tricks_in_file_names_refused() {
        for name in ["", ".", "..", "../etc/passwd", "a/b.pdf", "a\\b.pdf", ".hidden", "a\u{0}.pdf", " lead.pdf", "tab\t.pdf", "é.pdf", "a?.pdf", "a%2F.pdf"] {
            assert!(!is_valid_file_name(name), "{name:?}");
        }
        assert!(!is_valid_file_name(&"a".repeat(256)));
        assert!(is_valid_file_name(&"a".repeat(255)));
    }

    #[test]
    fn content_type_parameters_refused() {
        assert_eq!(normalize_content_type("text/plain; charset=utf-8"), None);
        assert_eq!(normalize_content_type("pdf"), None);
        assert_eq!(normalize_content_type("/pdf"), None);
        assert_eq!(normalize_content_type(" image/PNG "), Some("image/png".into()));
    }

    #[test]
    fn stored_object_must_match_declaration() {
        let up = check_upload(&pdf_only(1000), "a.pdf", "application/pdf", 10).unwrap();
        assert_eq!(verify_stored(&up, &Stored { size: 10, content_type: Some("application/pdf") }), Ok(()));
        assert!(matches!(verify_stored(&up, &Stored { size: 11, content_type: Some("application/pdf") }), Err(StoredMismatch::Size { .. })));
        assert!(matches!(verify_stored(&up, &Stored { size: 10, content_type: Some("image/png") }), Err(StoredMismatch::ContentType { .. })));
        assert!(matches!(verify_stored(&up, &Stored { size: 10, content_type: None }), Err(StoredMismatch::ContentType { .. })));
    }

    proptest! {
        // Whatever name is accepted, the object path has exactly the owner folder, the
        // attachment id and the name as its segments: the policies read the right folder.
        #[test]
        fn accepted_names_keep_the_path_shape(name in "\\PC{0,40}", folder in "[0-9a-f]{8}", id in "[0-9a-f]{8}") {
            if is_valid_file_name(&name) {
                let path = object_name(&folder, &id, &name);
                let segments: Vec<&str> = path.split('/').collect();
                prop_assert_eq!(segments, vec![folder.as_str(), id.as_str(), name.as_str()]);
            }
        }

        #[test]
        fn accepted_uploads_are_within_limits(size in -10i64..3000, limit in 1i64..2000) {
            if let Ok(up) = check_upload(&pdf_only(limit), "a.pdf", "application/pdf", size) {
                prop_assert!(up.size >= 1 && up.size <= limit);
            }
        }
    }
}
