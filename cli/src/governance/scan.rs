//! The canary scan: every table and every column of every SQLite store in a data folder, and
//! every file of its object store, searched for a person's bytes, whatever the declarations
//! say, so that a copy nobody declared is found. A value holding JSON is searched field by
//! field, so a sighting names the field (`payload.customer_id`) and, for a stored event or a
//! message envelope, the message's name.

use std::path::Path;

use anyhow::Context;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde_json::Value;
use tessera_kernel::personal::{PersonalField, Sighting};

/// The files of a store: the database and SQLite's companions, read through SQL instead.
const STORE_FILES: [&str; 4] = [".db", ".db-wal", ".db-shm", ".db-journal"];

/// Every place under `data` that holds one of `needles`.
pub fn scan(data: &Path, needles: &[String]) -> anyhow::Result<Vec<Sighting>> {
    let needles: Vec<Vec<u8>> = needles.iter().map(|n| n.to_ascii_lowercase().into_bytes()).collect();
    let mut sightings = Vec::new();
    let entries = std::fs::read_dir(data).with_context(|| format!("cannot read {}", data.display()))?;
    let mut paths: Vec<_> = entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if let Some(store) = name.strip_suffix(".db") {
            scan_store(&path, store, &needles, &mut sightings)
                .with_context(|| format!("cannot scan the store {}", path.display()))?;
        } else if !STORE_FILES.iter().any(|suffix| name.ends_with(suffix)) {
            scan_files(data, &path, &needles, &mut sightings)?;
        }
    }
    Ok(sightings)
}

/// A sighting with the declarations that cover it (none: undeclared).
#[derive(Debug, Serialize)]
pub struct Judged {
    pub sighting: Sighting,
    /// `service: field` of each covering declaration.
    pub declared_by: Vec<String>,
}

pub fn judge(sighting: Sighting, declarations: &[PersonalField]) -> Judged {
    let declared_by = declarations
        .iter()
        .filter(|d| d.covers(&sighting))
        .map(|d| format!("{}: {}", d.service, d.field))
        .collect();
    Judged { sighting, declared_by }
}

fn holds(bytes: &[u8], needles: &[Vec<u8>]) -> bool {
    needles.iter().any(|needle| {
        !needle.is_empty() && bytes.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
    })
}

fn scan_store(path: &Path, store: &str, needles: &[Vec<u8>], out: &mut Vec<Sighting>) -> anyhow::Result<()> {
    // Read-write (it never writes) so that SQLite may recover the write-ahead log of a
    // system that was stopped hard; a read-only connection cannot.
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let tables: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for table in tables {
        let mut statement = db.prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))?;
        let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
        // A stored event is named by its row; a message envelope by itself.
        let name_column =
            (table == "tessera_events").then(|| columns.iter().position(|c| c == "name")).flatten();
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            for (index, column) in columns.iter().enumerate() {
                let bytes = match row.get_ref(index)? {
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
                    ValueRef::Null | ValueRef::Integer(_) | ValueRef::Real(_) => continue,
                };
                if !holds(bytes, needles) {
                    continue;
                }
                let at = |message: Option<String>, path: Option<String>| Sighting {
                    store: store.to_owned(),
                    table: table.clone(),
                    column: column.clone(),
                    message,
                    path,
                };
                let json =
                    serde_json::from_slice::<Value>(bytes).ok().filter(|v| v.is_object() || v.is_array());
                let Some(json) = json else {
                    push_new(out, at(None, None));
                    continue;
                };
                let message = match name_column {
                    Some(i) => row.get_ref(i)?.as_str().ok().map(str::to_owned),
                    None => {
                        json.get("payload").and(json.get("name")).and_then(Value::as_str).map(str::to_owned)
                    }
                };
                let mut paths = Vec::new();
                json_paths(&json, "", needles, &mut paths);
                for path in paths {
                    push_new(out, at(message.clone(), Some(path)));
                }
            }
        }
    }
    Ok(())
}

/// The dotted paths of the fields of `value` whose text (or key) holds a needle; array
/// positions are left out, so every element of a list reads as one field.
fn json_paths(value: &Value, prefix: &str, needles: &[Vec<u8>], out: &mut Vec<String>) {
    let join = |key: &str| if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                if holds(key.as_bytes(), needles) {
                    out.push(join("(key)"));
                }
                json_paths(field, &join(key), needles, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| json_paths(item, prefix, needles, out)),
        Value::String(text) if holds(text.as_bytes(), needles) => {
            // Text that is itself JSON (a body kept as a string) is searched field by field.
            match serde_json::from_str::<Value>(text) {
                Ok(inner) if inner.is_object() || inner.is_array() => {
                    json_paths(&inner, prefix, needles, out)
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        _ => {}
    }
}

/// Files of the object store (or anything else in the data folder), by content and by path.
fn scan_files(data: &Path, path: &Path, needles: &[Vec<u8>], out: &mut Vec<Sighting>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut children: Vec<_> =
            std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        children.sort();
        for child in children {
            scan_files(data, &child, needles, out)?;
        }
        return Ok(());
    }
    let relative = path.strip_prefix(data).unwrap_or(path).to_string_lossy().into_owned();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if holds(&bytes, needles) || holds(relative.as_bytes(), needles) {
        push_new(
            out,
            Sighting {
                store: "objects".into(),
                table: "objects".into(),
                column: relative,
                message: None,
                path: None,
            },
        );
    }
    Ok(())
}

fn push_new(out: &mut Vec<Sighting>, sighting: Sighting) {
    if !out.contains(&sighting) {
        out.push(sighting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::declarations;

    const CANARY: &str = "Qxcanary-7f3a";

    /// A data folder with a support store holding the canary where support declares it may
    /// be (a ticket's owner, an envelope's subject) and in one column nobody declared.
    fn folder(with_undeclared: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Connection::open(dir.path().join("support.db")).expect("store");
        db.execute_batch(
            "CREATE TABLE tickets (id TEXT, customer_id TEXT, subject TEXT, nickname TEXT);
             CREATE TABLE tessera_outbox_envelopes (position INTEGER, envelope TEXT);",
        )
        .expect("tables");
        let nickname = if with_undeclared { format!("{CANARY} the bold") } else { String::from("none") };
        db.execute(
            "INSERT INTO tickets VALUES ('t-1', ?1, 'v1.c2VhbGVk', ?2)",
            rusqlite::params![CANARY, nickname],
        )
        .expect("ticket");
        let envelope = serde_json::json!({
            "name": "support.TicketOpened", "subject": CANARY, "key": "t-1",
            "payload": {"ticket_id": "t-1", "customer_id": CANARY, "subject": "v1.c2VhbGVk"}});
        db.execute("INSERT INTO tessera_outbox_envelopes VALUES (1, ?1)", [envelope.to_string()])
            .expect("envelope");
        dir
    }

    fn undeclared(dir: &Path) -> Vec<String> {
        let declared = declarations();
        scan(dir, &[CANARY.to_ascii_uppercase()])
            .expect("scan")
            .into_iter()
            .map(|s| judge(s, &declared))
            .filter(|j| j.declared_by.is_empty())
            .map(|j| j.sighting.to_string())
            .collect()
    }

    #[test]
    fn a_field_nobody_declared_is_caught_and_declared_ones_pass() {
        let clean = folder(false);
        let sightings = scan(clean.path(), &[CANARY.into()]).expect("scan");
        let mut shown: Vec<String> = sightings.iter().map(ToString::to_string).collect();
        shown.sort();
        assert_eq!(
            shown,
            [
                "support: tessera_outbox_envelopes.envelope (support.TicketOpened) → payload.customer_id",
                "support: tessera_outbox_envelopes.envelope (support.TicketOpened) → subject",
                "support: tickets.customer_id",
            ]
        );
        assert_eq!(undeclared(clean.path()), Vec::<String>::new());

        let leaky = folder(true);
        assert_eq!(undeclared(leaky.path()), ["support: tickets.nickname"]);
    }

    #[test]
    fn object_store_files_are_searched_by_content_and_path() {
        let dir = folder(false);
        let objects = dir.path().join("attachments").join("someone");
        std::fs::create_dir_all(&objects).expect("folder");
        std::fs::write(objects.join("file"), format!("hello {CANARY}")).expect("file");
        std::fs::write(dir.path().join("notes.txt"), CANARY).expect("stray file");
        assert_eq!(undeclared(dir.path()), ["objects: objects.notes.txt"]);
    }
}
