//! The committed JSON Schemas of the contracts (`schemas/<name>/v<N>.json`, each with a
//! sample message `v<N>.sample.json`) and the check that today's types still honour them.
//!
//! A committed version is a promise: the check fails when today's type breaks it in either
//! direction (see [`crate::compat`]), when an old version has no upcaster to today's, or when
//! the upcasters do not turn the old version's sample into a message today's type reads.
//! Writing (`tessera contracts check --write`) adds a new version's files and refreshes the
//! current version's after compatible changes; it refuses to overwrite a version a change
//! breaks, which must become a new version instead.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::catalogue::Contract;
use crate::compat::{Break, compare, conforms};
use crate::upcasting::{Upcaster, upcast};

/// Where the schemas are committed, in the source tree this crate was built from.
pub const SCHEMAS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");

#[derive(Debug, thiserror::Error)]
pub enum SchemaFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not JSON: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{name} v{version} is committed and today's type breaks it; make the change a new version with an upcaster:\n{}", list(.breaks))]
    WouldBreak { name: String, version: u32, breaks: Vec<Break> },
}

fn list(breaks: &[Break]) -> String {
    breaks.iter().map(|b| format!("  {b}")).collect::<Vec<_>>().join("\n")
}

/// Something wrong with one contract.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub contract: String,
    pub problem: Problem,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// Today's version has no committed schema yet.
    NotCommitted { version: u32 },
    /// Today's type breaks its committed schema.
    Broken { version: u32, by: Break },
    /// Today's type differs from its committed schema only compatibly (a description, an
    /// optional field): the file should be regenerated.
    OutOfDate { version: u32 },
    /// A version newer than today's type is committed.
    AheadOfType { version: u32 },
    /// A committed sample does not fit its own schema.
    SampleRejected { version: u32, reason: String },
    /// An old version cannot be lifted to today's.
    NoUpcaster { from_version: u32 },
    /// The upcasters lifted an old sample into something today's type does not read.
    UpcastRejected { from_version: u32, reason: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.contract;
        match &self.problem {
            Problem::NotCommitted { version } => {
                write!(f, "{name} v{version}: no committed schema (run `tessera contracts check --write`)")
            }
            Problem::Broken { version, by } => write!(f, "{name} v{version}: {by}"),
            Problem::OutOfDate { version } => write!(
                f,
                "{name} v{version}: committed schema differs compatibly from the type (run `tessera contracts check --write`)"
            ),
            Problem::AheadOfType { version } => {
                write!(f, "{name} v{version} is committed but the type is older")
            }
            Problem::SampleRejected { version, reason } => {
                write!(f, "{name} v{version}: the committed sample does not fit the schema: {reason}")
            }
            Problem::NoUpcaster { from_version } => write!(
                f,
                "{name} v{from_version}: no upcaster to v{} (a breaking change needs one)",
                from_version + 1
            ),
            Problem::UpcastRejected { from_version, reason } => write!(
                f,
                "{name} v{from_version}: its sample, upcast, is not a valid message of today's version: {reason}"
            ),
        }
    }
}

fn schema_path(dir: &Path, name: &str, version: u32) -> PathBuf {
    dir.join(name).join(format!("v{version}.json"))
}

fn sample_path(dir: &Path, name: &str, version: u32) -> PathBuf {
    dir.join(name).join(format!("v{version}.sample.json"))
}

fn read(path: &Path) -> Result<Option<Value>, SchemaFileError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| SchemaFileError::Parse { path: path.to_owned(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SchemaFileError::Read { path: path.to_owned(), source }),
    }
}

/// The versions committed for `name`, oldest first.
fn committed_versions(dir: &Path, name: &str) -> Result<Vec<u32>, SchemaFileError> {
    let folder = dir.join(name);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SchemaFileError::Read { path: folder, source }),
    };
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SchemaFileError::Read { path: folder.clone(), source })?;
        let file = entry.file_name();
        let version = file
            .to_str()
            .and_then(|f| f.strip_prefix('v'))
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|v| v.parse::<u32>().ok());
        versions.extend(version);
    }
    versions.sort_unstable();
    Ok(versions)
}

/// Every problem of `contracts` against the schemas committed under `dir`, lifting old
/// versions with `upcasters`. Empty when all is well.
pub fn check(
    dir: &Path,
    contracts: &[Contract],
    upcasters: &[Upcaster],
) -> Result<Vec<Finding>, SchemaFileError> {
    let mut findings = Vec::new();
    for contract in contracts {
        let found = |problem| Finding { contract: contract.name.to_owned(), problem };
        let today = contract.schema();
        let versions = committed_versions(dir, contract.name)?;
        match read(&schema_path(dir, contract.name, contract.version))? {
            None => findings.push(found(Problem::NotCommitted { version: contract.version })),
            Some(committed) => {
                let breaks = compare(&committed, &today);
                if breaks.is_empty() && committed != today {
                    findings.push(found(Problem::OutOfDate { version: contract.version }));
                }
                findings.extend(
                    breaks.into_iter().map(|by| found(Problem::Broken { version: contract.version, by })),
                );
            }
        }
        for &version in &versions {
            if version > contract.version {
                findings.push(found(Problem::AheadOfType { version }));
                continue;
            }
            let (Some(schema), Some(sample)) = (
                read(&schema_path(dir, contract.name, version))?,
                read(&sample_path(dir, contract.name, version))?,
            ) else {
                findings
                    .push(found(Problem::SampleRejected { version, reason: "no sample committed".into() }));
                continue;
            };
            if let Err(reason) = conforms(&schema, &sample) {
                findings.push(found(Problem::SampleRejected { version, reason }));
                continue;
            }
            if version == contract.version {
                continue;
            }
            match upcast(upcasters, contract.name, version, contract.version, sample) {
                Err(crate::upcasting::UpcastError::Missing { from_version, .. }) => {
                    findings.push(found(Problem::NoUpcaster { from_version }));
                }
                Err(failed) => {
                    findings.push(found(Problem::UpcastRejected {
                        from_version: version,
                        reason: failed.to_string(),
                    }));
                }
                Ok(lifted) => {
                    let read_today = conforms(&today, &lifted).and_then(|()| contract.accepts(lifted));
                    if let Err(reason) = read_today {
                        findings.push(found(Problem::UpcastRejected { from_version: version, reason }));
                    }
                }
            }
        }
    }
    Ok(findings)
}

/// Writes today's schema and sample of every contract whose committed files are missing or
/// differ only compatibly; refuses a version today's type breaks. Returns the files written.
pub fn write(dir: &Path, contracts: &[Contract]) -> Result<Vec<PathBuf>, SchemaFileError> {
    let mut written = Vec::new();
    for contract in contracts {
        let today = contract.schema();
        let schema_file = schema_path(dir, contract.name, contract.version);
        if let Some(committed) = read(&schema_file)? {
            let breaks = compare(&committed, &today);
            if !breaks.is_empty() {
                return Err(SchemaFileError::WouldBreak {
                    name: contract.name.to_owned(),
                    version: contract.version,
                    breaks,
                });
            }
        }
        for (path, value) in
            [(schema_file, today), (sample_path(dir, contract.name, contract.version), contract.sample())]
        {
            if read(&path)?.as_ref() == Some(&value) {
                continue;
            }
            let folder = dir.join(contract.name);
            std::fs::create_dir_all(&folder)
                .map_err(|source| SchemaFileError::Write { path: folder, source })?;
            let mut text = serde_json::to_string_pretty(&value)
                .map_err(|source| SchemaFileError::Parse { path: path.clone(), source })?;
            text.push('\n');
            std::fs::write(&path, text)
                .map_err(|source| SchemaFileError::Write { path: path.clone(), source })?;
            written.push(path);
        }
    }
    Ok(written)
}
