//! SQL helpers shared by the backend's readers and its writer.

use rusqlite::Connection;

use crate::backend::to_u64;
use crate::error::{Result, StoreError};
use crate::model::SqlValue;

/// The outbox's highest position, as this connection sees it.
pub(crate) fn highest_outbox_position(connection: &Connection) -> Result<Option<u64>> {
    let high: Option<i64> = connection
        .prepare_cached("SELECT max(position) FROM tessera_outbox")?
        .query_row([], |row| row.get(0))?;
    high.map(to_u64).transpose()
}

/// Binds `values` to `statement`'s parameters. Statements are written once for both backends
/// with PostgreSQL's `$1, $2, …`, which SQLite reads as named parameters (`$` followed by a
/// name): SQLite's own tokenizer finds them, so text in quotes or comments is never mistaken
/// for one, and each is bound to the value its number names, in whatever order they appear.
pub(crate) fn bind(statement: &mut rusqlite::Statement<'_>, values: &[SqlValue]) -> Result<()> {
    for index in 1..=statement.parameter_count() {
        let number = match statement.parameter_name(index) {
            Some(name) => name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| StoreError::Sqlite(rusqlite::Error::InvalidParameterName(name.to_owned())))?,
            // A plain `?` takes the values in order.
            None => index,
        };
        let value = number
            .checked_sub(1)
            .and_then(|at| values.get(at))
            .ok_or(StoreError::Sqlite(rusqlite::Error::InvalidParameterCount(number, values.len())))?;
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}
