//! Roles and password authentication (Cassandra's CassandraRoleManager and
//! PasswordAuthenticator).
//!
//! Roles live in an internal engine table, one partition per role, so they
//! are durable like any data and survive restarts. Passwords are stored as
//! bcrypt hashes (salted, 2^10 rounds, the `$2a$` form Cassandra writes);
//! the clear password is never stored or logged. A node with no roles gets
//! the default superuser `cassandra`/`cassandra`, as Cassandra does.
//!
//! Permissions (GRANT/REVOKE) are not enforced yet: only role management is
//! restricted to superusers when authentication is on.

use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use storage_lsm::model::TableId;
use storage_lsm::model::{Cell, DeletionTime, Mutation, PartitionKey, PartitionUpdate, Row};
use storage_lsm::{Engine, SliceQuery, TableOptions, TokenRange};

use crate::protocol::error::CqlError;

/// The internal table of roles.
pub const ROLES_TABLE: TableId = TableId(0x1110_0000_0000_0000_0000_0000_0000_0002);

/// The class name drivers see in AUTHENTICATE.
pub const PASSWORD_AUTHENTICATOR: &str = "org.apache.cassandra.auth.PasswordAuthenticator";

/// The role created on a node that has none.
pub const DEFAULT_SUPERUSER: &str = "cassandra";

/// bcrypt's work factor (Cassandra's `auth_bcrypt_gensalt_log2_rounds`).
const BCRYPT_COST: u32 = 10;

const CELL_HASH: u32 = 1;
const CELL_SUPERUSER: u32 = 2;
const CELL_LOGIN: u32 = 3;

/// Which authenticator the node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Authenticator {
    /// Every connection is accepted without credentials.
    #[default]
    AllowAll,
    /// SASL PLAIN with a role name and password.
    Password,
}

/// One role as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub salted_hash: Option<String>,
    pub superuser: bool,
    pub login: bool,
}

fn storage_error(what: &str, error: impl std::fmt::Display) -> CqlError {
    CqlError::Server(format!("cannot {what} roles: {error}"))
}

fn role_key(name: &str) -> PartitionKey {
    PartitionKey::new(
        replication::murmur3::token_of(name.as_bytes()),
        name.as_bytes().to_vec(),
    )
}

/// Microsecond timestamps that never repeat, so a role dropped and created
/// again in the same microsecond is not shadowed by its own tombstone.
fn next_timestamp() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// A bcrypt hash at [`BCRYPT_COST`] of a password no role has, verified
/// in place of a missing role's hash.
const TIMING_HASH: &str = "$2a$10$XD6MyCeiPeUpXqsOsqZX3eM16T1UUL05ez36zs9nZiZtQHhUEFaw2";

/// A bcrypt hash of `password` in the `$2a$` form.
pub fn hash_password(password: &str) -> Result<String, CqlError> {
    bcrypt::hash_with_result(password, BCRYPT_COST)
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoA))
        .map_err(|e| CqlError::Server(format!("cannot hash the password: {e}")))
}

/// Creates the roles table and the default superuser on a node that has none.
pub fn setup(engine: &Engine) -> Result<(), CqlError> {
    if !engine.has_table(ROLES_TABLE) {
        engine
            .create_table(ROLES_TABLE, TableOptions::default())
            .map_err(|e| storage_error("create the table of", e))?;
    }
    if list(engine)?.is_empty() {
        put(
            engine,
            &Role {
                name: DEFAULT_SUPERUSER.into(),
                salted_hash: Some(hash_password(DEFAULT_SUPERUSER)?),
                superuser: true,
                login: true,
            },
        )?;
        tracing::info!("created the default superuser role '{DEFAULT_SUPERUSER}'");
    }
    Ok(())
}

fn role_from_row(name: &[u8], row: &Row) -> Role {
    let cell = |column: u32| {
        row.cells
            .iter()
            .find(|c| c.column == column)
            .and_then(|c| c.value_bytes())
    };
    Role {
        name: String::from_utf8_lossy(name).into_owned(),
        salted_hash: cell(CELL_HASH).map(|b| String::from_utf8_lossy(b).into_owned()),
        superuser: cell(CELL_SUPERUSER).is_some_and(|b| b.first() == Some(&1)),
        login: cell(CELL_LOGIN).is_some_and(|b| b.first() == Some(&1)),
    }
}

/// The role named `name`, if it exists.
pub fn get(engine: &Engine, name: &str) -> Result<Option<Role>, CqlError> {
    let partition = engine
        .read(ROLES_TABLE, &role_key(name), &SliceQuery::all())
        .map_err(|e| storage_error("read", e))?;
    Ok(partition.and_then(|p| p.rows.first().map(|row| role_from_row(&p.key.key, row))))
}

/// Every role, by name.
pub fn list(engine: &Engine) -> Result<Vec<Role>, CqlError> {
    let page = engine
        .scan(ROLES_TABLE, &TokenRange::all(), None, usize::MAX)
        .map_err(|e| storage_error("read", e))?;
    let mut roles: Vec<Role> = page
        .partitions
        .iter()
        .filter_map(|p| p.rows.first().map(|row| role_from_row(&p.key.key, row)))
        .collect();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(roles)
}

/// Writes a role (all of its settings) and syncs it to disk.
pub fn put(engine: &Engine, role: &Role) -> Result<(), CqlError> {
    let timestamp = next_timestamp();
    let mut cells = vec![
        Cell::live(CELL_SUPERUSER, timestamp, vec![u8::from(role.superuser)]),
        Cell::live(CELL_LOGIN, timestamp, vec![u8::from(role.login)]),
    ];
    match &role.salted_hash {
        Some(hash) => cells.push(Cell::live(CELL_HASH, timestamp, hash.as_bytes().to_vec())),
        None => cells.push(Cell::tombstone(CELL_HASH, timestamp, timestamp / 1_000_000)),
    }
    let update = PartitionUpdate {
        rows: vec![Row::new(Bytes::new(), cells)],
        ..Default::default()
    };
    store(engine, &role.name, update)
}

/// Removes a role.
pub fn drop_role(engine: &Engine, name: &str) -> Result<(), CqlError> {
    let timestamp = next_timestamp();
    let update = PartitionUpdate {
        partition_deletion: Some(DeletionTime {
            timestamp,
            local_deletion_time_s: timestamp / 1_000_000,
        }),
        ..Default::default()
    };
    store(engine, name, update)
}

/// Applies a role change and flushes it: an acknowledged role change (a new
/// password, a dropped role) must survive a crash in any sync mode.
fn store(engine: &Engine, name: &str, update: PartitionUpdate) -> Result<(), CqlError> {
    engine
        .apply(Mutation {
            table: ROLES_TABLE,
            key: role_key(name),
            update,
        })
        .map_err(|e| storage_error("store", e))?;
    engine
        .flush(ROLES_TABLE)
        .map_err(|e| storage_error("persist", e))
}

/// The message Cassandra gives for any failed login (it does not say which
/// half was wrong).
fn bad_credentials(user: &str) -> CqlError {
    CqlError::BadCredentials(format!(
        "Provided username {user} and/or password are incorrect"
    ))
}

/// Checks a SASL PLAIN token (`[authzid] NUL authcid NUL password`) and
/// returns the role that logged in.
pub fn authenticate_plain(engine: &Engine, token: &[u8]) -> Result<Role, CqlError> {
    let mut parts = token.split(|b| *b == 0);
    let (Some(_authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CqlError::BadCredentials(
            "the SASL PLAIN token must be '[authzid] NUL username NUL password'".into(),
        ));
    };
    let user = std::str::from_utf8(user)
        .map_err(|_| CqlError::BadCredentials("the username is not UTF-8".into()))?;
    let password = std::str::from_utf8(password)
        .map_err(|_| CqlError::BadCredentials("the password is not UTF-8".into()))?;
    let role = get(engine, user)?;
    // An unknown role, or one without a password, is checked against a
    // hash of the same cost, so a refusal takes as long whether the role
    // exists or not (the time would otherwise tell which roles exist).
    let hash = role
        .as_ref()
        .and_then(|r| r.salted_hash.as_deref())
        .unwrap_or(TIMING_HASH);
    // A stored hash that does not parse is treated like a wrong password.
    let verified = bcrypt::verify(password, hash).unwrap_or(false);
    let Some(role) = role.filter(|r| verified && r.salted_hash.is_some()) else {
        return Err(bad_credentials(user));
    };
    if !role.login {
        return Err(CqlError::BadCredentials(format!(
            "{user} is not permitted to log in"
        )));
    }
    Ok(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stand-in hash costs what a role's hash costs, or the time of a
    /// refusal would tell whether the role exists.
    #[test]
    fn the_timing_hash_has_the_cost_of_real_hashes() {
        assert!(TIMING_HASH.starts_with(&format!("$2a${BCRYPT_COST:02}$")));
        let real = hash_password("x");
        assert!(real.is_ok_and(|h| h.get(..7) == TIMING_HASH.get(..7)));
    }

    /// Tests fail with the error instead of panicking on it.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn engine() -> Result<(tempfile::TempDir, Engine), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(storage_lsm::EngineConfig::new(
            dir.path().join("data"),
            dir.path().join("commitlog"),
        ))?;
        Ok((dir, engine))
    }

    #[test]
    fn default_superuser_logs_in_and_wrong_passwords_do_not() -> TestResult {
        let (_dir, engine) = engine()?;
        setup(&engine)?;
        let role = authenticate_plain(&engine, b"\0cassandra\0cassandra")?;
        assert!(role.superuser && role.login);
        let stored = get(&engine, "cassandra")?.ok_or("no cassandra role")?;
        let hash = stored.salted_hash.ok_or("no password hash")?;
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(!hash.contains("cassandra"));
        for token in [
            &b"\0cassandra\0wrong"[..],
            b"\0nobody\0cassandra",
            b"garbage",
            b"\0a\0b\0c",
        ] {
            let error = authenticate_plain(&engine, token).unwrap_err();
            assert_eq!(error.code(), 0x0100, "{error}");
        }
        Ok(())
    }

    #[test]
    fn roles_are_created_altered_dropped_and_survive_reopen() -> TestResult {
        let dir = tempfile::tempdir()?;
        {
            let engine = Engine::open(storage_lsm::EngineConfig::new(
                dir.path().join("data"),
                dir.path().join("commitlog"),
            ))?;
            setup(&engine)?;
            let mut alice = Role {
                name: "alice".into(),
                salted_hash: Some(hash_password("s3cret")?),
                superuser: false,
                login: true,
            };
            put(&engine, &alice)?;
            alice.login = false;
            put(&engine, &alice)?;
            drop_role(&engine, "cassandra")?;
            engine.shutdown()?;
        }
        let engine = Engine::open(storage_lsm::EngineConfig::new(
            dir.path().join("data"),
            dir.path().join("commitlog"),
        ))?;
        setup(&engine)?;
        let names: Vec<String> = list(&engine)?.into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["alice"], "the default role is not re-created");
        let error = authenticate_plain(&engine, b"\0alice\0s3cret").unwrap_err();
        assert!(error.to_string().contains("not permitted"), "{error}");
        Ok(())
    }
}
