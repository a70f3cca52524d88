//! The statements a stress run executes: the built-in `standard1` table,
//! or a user profile (YAML, in the spirit of cassandra-stress user
//! profiles) naming a keyspace, a table, their definitions and the insert
//! and read queries.
//!
//! Bind values are made from each statement's bind metadata: partition key
//! variables from the operation's key, the others from random data of the
//! variable's type.

use std::path::Path;

use rand::Rng;
use scylla::frame::response::result::{ColumnType, NativeType};
use scylla::value::{CqlTimestamp, CqlValue};
use serde::Deserialize;

/// A user profile as written in YAML.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub keyspace: String,
    /// `CREATE KEYSPACE ...` (optional: the keyspace may exist already).
    #[serde(default)]
    pub keyspace_definition: Option<String>,
    pub table: String,
    /// `CREATE TABLE ...` (optional: the table may exist already).
    #[serde(default)]
    pub table_definition: Option<String>,
    pub queries: Queries,
}

/// The statements of a profile, with `?` bind markers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Queries {
    pub insert: String,
    pub read: String,
}

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("profile {path}: {message}")]
    Parse { path: String, message: String },
}

impl Profile {
    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|e| ProfileError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The built-in workload: cassandra-stress's `standard1` shape, one
    /// blob key and one blob value of `value_size` bytes.
    pub fn standard(replication_factor: u32) -> Profile {
        Profile {
            keyspace: "ilion_stress".into(),
            keyspace_definition: Some(format!(
                "CREATE KEYSPACE IF NOT EXISTS ilion_stress WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
            )),
            table: "standard1".into(),
            table_definition: Some(
                "CREATE TABLE IF NOT EXISTS ilion_stress.standard1 (key blob PRIMARY KEY, c0 blob)"
                    .into(),
            ),
            queries: Queries {
                insert: "INSERT INTO ilion_stress.standard1 (key, c0) VALUES (?, ?)".into(),
                read: "SELECT key, c0 FROM ilion_stress.standard1 WHERE key = ?".into(),
            },
        }
    }
}

/// How to make one bind variable's value.
#[derive(Debug, Clone)]
pub enum ValueMaker {
    /// From the operation's key, as this type.
    Key(NativeType),
    /// Random data of this type (`size` bytes or characters for blobs and text).
    Random(NativeType),
}

/// Plans the values of a statement's bind variables.
pub fn value_makers(
    types: &[(String, ColumnType<'_>)],
    partition_key: &[usize],
) -> Result<Vec<ValueMaker>, String> {
    types
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let ColumnType::Native(native) = ty else {
                return Err(format!(
                    "bind variable {name} has type {ty:?}, which ilion stress cannot generate yet \
                     (use scalar types)"
                ));
            };
            let supported = matches!(
                native,
                NativeType::Ascii
                    | NativeType::Text
                    | NativeType::Blob
                    | NativeType::Int
                    | NativeType::BigInt
                    | NativeType::SmallInt
                    | NativeType::TinyInt
                    | NativeType::Double
                    | NativeType::Float
                    | NativeType::Boolean
                    | NativeType::Timestamp
            );
            if !supported {
                return Err(format!(
                    "bind variable {name} has type {native:?}, which ilion stress cannot generate yet"
                ));
            }
            Ok(if partition_key.contains(&i) {
                ValueMaker::Key(native.clone())
            } else {
                ValueMaker::Random(native.clone())
            })
        })
        .collect()
}

/// One bind value.
pub fn make_value(maker: &ValueMaker, key: u64, value_size: usize, rng: &mut impl Rng) -> CqlValue {
    let (ty, n) = match maker {
        ValueMaker::Key(ty) => (ty, key),
        ValueMaker::Random(ty) => (ty, rng.gen()),
    };
    match ty {
        NativeType::Blob => match maker {
            ValueMaker::Key(_) => CqlValue::Blob(n.to_be_bytes().to_vec()),
            ValueMaker::Random(_) => {
                let mut bytes = vec![0u8; value_size];
                rng.fill(bytes.as_mut_slice());
                CqlValue::Blob(bytes)
            }
        },
        NativeType::Ascii | NativeType::Text => {
            let text = match maker {
                ValueMaker::Key(_) => format!("key{n:012}"),
                ValueMaker::Random(_) => (0..value_size)
                    .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
                    .collect(),
            };
            if matches!(ty, NativeType::Ascii) {
                CqlValue::Ascii(text)
            } else {
                CqlValue::Text(text)
            }
        }
        NativeType::Int => CqlValue::Int(n as i32),
        NativeType::SmallInt => CqlValue::SmallInt(n as i16),
        NativeType::TinyInt => CqlValue::TinyInt(n as i8),
        NativeType::Double => CqlValue::Double(n as f64),
        NativeType::Float => CqlValue::Float(n as f32),
        NativeType::Boolean => CqlValue::Boolean(n % 2 == 0),
        NativeType::Timestamp => CqlValue::Timestamp(CqlTimestamp((n % (1 << 40)) as i64)),
        _ => CqlValue::BigInt(n as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_reads_from_yaml_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            "keyspace: ks\ntable: t\nqueries:\n  insert: INSERT INTO ks.t (k) VALUES (?)\n  read: SELECT * FROM ks.t WHERE k = ?\n",
        )
        .unwrap();
        let profile = Profile::from_file(&path).unwrap();
        assert_eq!(profile.table, "t");
        assert!(profile.table_definition.is_none());
        std::fs::write(
            &path,
            "keyspace: ks\ntable: t\nbogus: 1\nqueries: {insert: a, read: b}\n",
        )
        .unwrap();
        let error = Profile::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("bogus"), "{error}");
    }

    #[test]
    fn key_values_follow_the_key_and_random_ones_the_size() {
        let mut rng = rand::thread_rng();
        let key = make_value(&ValueMaker::Key(NativeType::Int), 42, 10, &mut rng);
        assert_eq!(key, CqlValue::Int(42));
        let blob = make_value(&ValueMaker::Random(NativeType::Blob), 0, 100, &mut rng);
        assert!(matches!(blob, CqlValue::Blob(b) if b.len() == 100));
        let types = vec![("m".to_owned(), ColumnType::Native(NativeType::Duration))];
        assert!(value_makers(&types, &[])
            .unwrap_err()
            .contains("cannot generate"));
    }
}
