//! SQL helpers shared by the backend's readers and its writer.

use rusqlite::Connection;

use crate::backend::to_u64;
use crate::error::Result;

/// The outbox's highest position, as this connection sees it.
pub(crate) fn highest_outbox_position(connection: &Connection) -> Result<Option<u64>> {
    let high: Option<i64> = connection
        .prepare_cached("SELECT max(position) FROM tessera_outbox")?
        .query_row([], |row| row.get(0))?;
    high.map(to_u64).transpose()
}

/// `$1, $2, …` (written once for both backends) to SQLite's `?1, ?2, …`, leaving quoted text
/// alone.
pub(crate) fn translate_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}
