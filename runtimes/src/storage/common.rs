//! Helpers shared by the storage backends: path rules, listing rules, range checks and the
//! guard that retires an appender after a failed append.

use std::ops::Range;

use super::{StorageError, StorageErrorKind, invalid_path, validate_path};

/// The name prefix of the temporary files a backend writes before renaming them into place. Such
/// names are reserved: they are never listed, and users cannot create files with them.
pub(crate) const TEMP_FILE_PREFIX: &str = ".tmp-";

/// Checks that `path` names a file: a valid storage path, not empty, not a reserved temporary
/// name. Returns its directory components and its file name.
pub(crate) fn split_file_path<'p>(
    operation: &'static str,
    path: &'p str,
) -> Result<(Vec<&'p str>, &'p str), StorageError> {
    let mut components = validate_path(operation, path)?;
    let invalid = |why: &str| invalid_path(operation, path, why);
    let Some(name) = components.pop() else {
        return Err(invalid("a file path must not be empty"));
    };
    if name.starts_with(TEMP_FILE_PREFIX) {
        return Err(invalid(
            "names starting with `.tmp-` are reserved for temporary files",
        ));
    }
    Ok((components, name))
}

/// Like [`split_file_path`], for backends that do not need the parts.
pub(crate) fn check_file_path(operation: &'static str, path: &str) -> Result<(), StorageError> {
    split_file_path(operation, path).map(|_| ())
}

/// Whether `path` (a file path relative to the root) is directly inside `dir` and is a name
/// that listings show (not a temporary file).
pub(crate) fn is_listed_child(dir: &str, path: &str) -> bool {
    let name = if dir.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
    };
    name.is_some_and(|name| {
        !name.is_empty() && !name.contains('/') && !name.starts_with(TEMP_FILE_PREFIX)
    })
}

/// Checks a read range and returns its length. A range that ends past `file_len` (when known)
/// fails with [`StorageErrorKind::UnexpectedEof`].
pub(crate) fn check_range(
    operation: &'static str,
    path: &str,
    range: &Range<u64>,
    file_len: Option<u64>,
) -> Result<usize, StorageError> {
    let error = |kind, message: String| StorageError::new(kind, operation, path, message);
    if range.start > range.end {
        return Err(error(
            StorageErrorKind::Io,
            format!("invalid range {range:?}: it starts after its end"),
        ));
    }
    if let Some(file_len) = file_len.filter(|file_len| range.end > *file_len) {
        return Err(error(
            StorageErrorKind::UnexpectedEof,
            format!("range {range:?} extends past the end of the file ({file_len} bytes)"),
        ));
    }
    usize::try_from(range.end - range.start).map_err(|_| {
        error(
            StorageErrorKind::Io,
            format!("range {range:?} does not fit in memory"),
        )
    })
}

/// Refuses to use an appender after an append failed or was abandoned half-way: the file may then
/// hold part of the data, so writing on (or closing it, which publishes an object) would build on
/// bytes nobody knows. Call [`AppendGuard::begin`] before the I/O and [`AppendGuard::end`] after
/// it succeeded.
#[derive(Debug, Default)]
pub(crate) struct AppendGuard {
    unfinished: bool,
}

impl AppendGuard {
    pub(crate) fn begin(
        &mut self,
        operation: &'static str,
        path: &str,
    ) -> Result<(), StorageError> {
        if self.unfinished {
            return Err(StorageError::new(
                StorageErrorKind::Io,
                operation,
                path,
                "an earlier append to this file failed or was abandoned, so its content is \
                 unknown; the appender cannot be used any more",
            ));
        }
        self.unfinished = true;
        Ok(())
    }

    pub(crate) fn end(&mut self) {
        self.unfinished = false;
    }
}

/// The error for a durable append on a backend that stores files whole (object stores).
pub(crate) fn durable_append_unsupported(path: &str) -> StorageError {
    StorageError::new(
        StorageErrorKind::Unsupported,
        "append",
        path,
        "an object store cannot make part of an object durable; it stores the object whole when \
         it is closed (write one file per durable unit with put_if_absent)",
    )
}
