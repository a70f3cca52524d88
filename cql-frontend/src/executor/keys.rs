//! Partition and clustering keys built from column values and taken apart
//! again: Cassandra's composite layout for partition keys (so tokens match
//! drivers'), byte-comparable prefixes for clustering columns.

use bytes::{BufMut, Bytes, BytesMut};

use storage_lsm::model::PartitionKey;

use crate::protocol::error::CqlError;
use crate::protocol::primitives::Value;
use crate::schema::{ColumnSchema, TableSchema};

use super::invalid;

/// The byte-comparable encoding of values of consecutive clustering columns.
pub(super) fn encode_prefix(
    columns: &[&ColumnSchema],
    values: &[Bytes],
) -> Result<Vec<u8>, CqlError> {
    let mut out = Vec::new();
    for (column, value) in columns.iter().zip(values) {
        column
            .ty
            .encode_comparable(value, column.descending, &mut out)
            .map_err(|e| invalid(e.0))?;
    }
    Ok(out)
}

pub(super) fn key_from_components(components: &[Bytes]) -> Result<PartitionKey, CqlError> {
    let bytes: Bytes = match components {
        [single] => single.clone(),
        many => {
            let mut out = BytesMut::new();
            for component in many {
                if component.len() > u16::MAX as usize {
                    return Err(invalid(
                        "Partition key component too large (over 65535 bytes)",
                    ));
                }
                out.put_u16(component.len() as u16);
                out.put_slice(component);
                out.put_u8(0);
            }
            out.freeze()
        }
    };
    if bytes.is_empty() {
        return Err(invalid("Key may not be empty"));
    }
    if bytes.len() > u16::MAX as usize {
        return Err(invalid(
            "Key length of partition key is longer than maximum of 65535",
        ));
    }
    Ok(PartitionKey::new(
        replication::murmur3::token_of(&bytes),
        bytes,
    ))
}

pub(super) fn partition_key(
    table: &TableSchema,
    value_of: impl Fn(&ColumnSchema) -> Option<Value>,
) -> Result<PartitionKey, CqlError> {
    let mut components = Vec::new();
    for column in table.partition_key() {
        match value_of(column) {
            Some(Value::Set(bytes)) => components.push(bytes),
            Some(_) => {
                return Err(invalid(format!(
                    "Invalid null value in condition for column {}",
                    column.name
                )))
            }
            None => {
                return Err(invalid(format!(
                    "Some partition key parts are missing: {}",
                    column.name
                )))
            }
        }
    }
    key_from_components(&components)
}

pub(super) fn clustering_key(
    table: &TableSchema,
    value_of: impl Fn(&ColumnSchema) -> Option<Value>,
) -> Result<Bytes, CqlError> {
    let mut out = Vec::new();
    for column in table.clustering() {
        match value_of(column) {
            Some(Value::Set(bytes)) if bytes.len() > u16::MAX as usize => {
                return Err(invalid(format!(
                    "Key length of {} is longer than maximum of {} (clustering column {})",
                    bytes.len(),
                    u16::MAX,
                    column.name
                )))
            }
            Some(Value::Set(bytes)) => column
                .ty
                .encode_comparable(&bytes, column.descending, &mut out)
                .map_err(|e| invalid(e.0))?,
            Some(_) => {
                return Err(invalid(format!(
                    "Invalid null value in condition for column {}",
                    column.name
                )))
            }
            None => {
                return Err(invalid(format!(
                    "Some clustering keys are missing: {}",
                    column.name
                )))
            }
        }
    }
    Ok(Bytes::from(out))
}

pub(super) fn partition_key_components(
    table: &TableSchema,
    key: &[u8],
) -> Result<Vec<Bytes>, CqlError> {
    let count = table.partition_key().count();
    if count == 1 {
        return Ok(vec![Bytes::copy_from_slice(key)]);
    }
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for _ in 0..count {
        let len_bytes = key
            .get(at..at + 2)
            .ok_or_else(|| CqlError::Server("stored partition key is malformed".into()))?;
        let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let value = key
            .get(at + 2..at + 2 + len)
            .ok_or_else(|| CqlError::Server("stored partition key is malformed".into()))?;
        out.push(Bytes::copy_from_slice(value));
        at += 2 + len + 1;
    }
    Ok(out)
}

pub(super) fn clustering_components(
    table: &TableSchema,
    clustering: &[u8],
) -> Result<Vec<Bytes>, CqlError> {
    let mut out = Vec::new();
    let mut at = 0;
    for column in table.clustering() {
        let rest = clustering.get(at..).unwrap_or_default();
        let (value, used) = column
            .ty
            .decode_comparable(rest, column.descending)
            .map_err(|e| {
                CqlError::Server(format!("stored clustering key is malformed: {}", e.0))
            })?;
        out.push(Bytes::from(value));
        at += used;
    }
    Ok(out)
}
