//! `SqlValue` on the wire: bound to whatever column type the statement expects, and read
//! back from the handful of portable column types.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::model::SqlValue;

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for SqlValue {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (SqlValue::Null, _) => Ok(IsNull::Yes),
            (SqlValue::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (SqlValue::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (SqlValue::Int(v), &Type::INT8) => v.to_sql(ty, out),
            // Integers are exact in a double up to 2^53; wider ones lose digits, as in SQL.
            #[allow(clippy::cast_precision_loss)]
            (SqlValue::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (SqlValue::Real(v), &Type::FLOAT8) => v.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (SqlValue::Real(v), &Type::FLOAT4) => (*v as f32).to_sql(ty, out),
            (SqlValue::Text(v), &Type::JSONB) => {
                out.put_u8(1);
                out.put_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            (SqlValue::Text(v), &Type::JSON) => {
                out.put_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            (SqlValue::Text(v), _) if <&str as ToSql>::accepts(ty) => v.as_str().to_sql(ty, out),
            (SqlValue::Blob(v), &Type::BYTEA) => v.as_slice().to_sql(ty, out),
            (SqlValue::Bool(v), &Type::BOOL) => v.to_sql(ty, out),
            (value, ty) => Err(format!("cannot bind {value:?} to a parameter of type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for SqlValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT2 => SqlValue::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => SqlValue::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => SqlValue::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => SqlValue::Real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => SqlValue::Real(f64::from_sql(ty, raw)?),
            Type::BOOL => SqlValue::Bool(bool::from_sql(ty, raw)?),
            Type::BYTEA => SqlValue::Blob(raw.to_vec()),
            Type::JSON => SqlValue::Text(std::str::from_utf8(raw)?.to_owned()),
            Type::JSONB => SqlValue::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?.to_owned()),
            _ if <&str as FromSql>::accepts(ty) => SqlValue::Text(<&str>::from_sql(ty, raw)?.to_owned()),
            _ => {
                return Err(format!("columns of type {ty} are not supported; cast to a portable type").into());
            }
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(SqlValue::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
