//! Schema statements: USE, CREATE/ALTER/DROP of keyspaces, tables and
//! types (each changes the catalog and answers SCHEMA_CHANGE), and TRUNCATE.

use crate::cql::ast::Statement;
use crate::node::Session;
use crate::protocol::error::CqlError;
use crate::results::{ResultBody, SchemaChange};
use crate::schema::{resolve_keyspace, SYSTEM_KEYSPACES};

use super::{coordinator_error, invalid, Context, TRUNCATE_TIMEOUT};

impl Context<'_> {
    /// Runs a schema statement (or TRUNCATE); other statements are a bug.
    pub(super) fn schema_statement(
        &self,
        session: &mut Session,
        statement: &Statement,
    ) -> Result<ResultBody, CqlError> {
        let engine = self.node.coordinator.engine();
        let schema_change = |change, target, keyspace: &str, name: Option<&str>| {
            ResultBody::SchemaChange(SchemaChange {
                change,
                target,
                keyspace: keyspace.to_owned(),
                name: name.map(str::to_owned),
            })
        };
        match statement {
            Statement::Use(keyspace) => {
                if !SYSTEM_KEYSPACES.contains(&keyspace.as_str())
                    && self.node.catalog.read().keyspace(keyspace).is_none()
                {
                    return Err(invalid(format!("Keyspace '{keyspace}' does not exist")));
                }
                session.keyspace = Some(keyspace.clone());
                Ok(ResultBody::SetKeyspace(keyspace.clone()))
            }
            Statement::CreateKeyspace {
                name,
                if_not_exists,
                options,
            } => {
                let created = self.node.catalog.write().create_keyspace(
                    engine,
                    name,
                    *if_not_exists,
                    options,
                )?;
                Ok(if created {
                    schema_change("CREATED", "KEYSPACE", name, None)
                } else {
                    ResultBody::Void
                })
            }
            Statement::AlterKeyspace { name, options } => {
                self.node
                    .catalog
                    .write()
                    .alter_keyspace(engine, name, options)?;
                Ok(schema_change("UPDATED", "KEYSPACE", name, None))
            }
            Statement::DropKeyspace { name, if_exists } => {
                let dropped = self
                    .node
                    .catalog
                    .write()
                    .drop_keyspace(engine, name, *if_exists)?;
                if dropped {
                    // Statements on its tables must not run against new
                    // tables of the same names (CASSANDRA-15252): clients
                    // are told Unprepared and prepare again.
                    self.node.prepared.clear();
                }
                Ok(if dropped {
                    schema_change("DROPPED", "KEYSPACE", name, None)
                } else {
                    ResultBody::Void
                })
            }
            Statement::CreateTable { .. } => {
                let created = self.node.catalog.write().create_table(
                    engine,
                    statement,
                    session.keyspace.as_deref(),
                )?;
                Ok(created.map_or(ResultBody::Void, |table| {
                    schema_change("CREATED", "TABLE", &table.keyspace, Some(&table.name))
                }))
            }
            Statement::CreateType {
                name,
                if_not_exists,
                fields,
            } => {
                let created = self.node.catalog.write().create_type(
                    engine,
                    name,
                    *if_not_exists,
                    fields,
                    session.keyspace.as_deref(),
                )?;
                Ok(created.map_or(ResultBody::Void, |udt| {
                    schema_change("CREATED", "TYPE", &udt.keyspace, Some(&udt.name))
                }))
            }
            Statement::DropType { name, if_exists } => {
                let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
                let dropped = self.node.catalog.write().drop_type(
                    engine,
                    name,
                    *if_exists,
                    session.keyspace.as_deref(),
                )?;
                Ok(if dropped {
                    schema_change("DROPPED", "TYPE", &keyspace, Some(&name.name))
                } else {
                    ResultBody::Void
                })
            }
            Statement::AlterTable {
                name,
                if_exists,
                change,
            } => {
                let altered = self.node.catalog.write().alter_table(
                    engine,
                    name,
                    *if_exists,
                    change,
                    session.keyspace.as_deref(),
                )?;
                // Prepared statements describe the old columns: drivers
                // prepare again when told Unprepared.
                self.node.prepared.clear();
                Ok(altered.map_or(ResultBody::Void, |table| {
                    schema_change("UPDATED", "TABLE", &table.keyspace, Some(&table.name))
                }))
            }
            Statement::AlterType {
                name,
                if_exists,
                change,
            } => {
                let altered = self.node.catalog.write().alter_type(
                    engine,
                    name,
                    *if_exists,
                    change,
                    session.keyspace.as_deref(),
                )?;
                self.node.prepared.clear();
                Ok(altered.map_or(ResultBody::Void, |udt| {
                    schema_change("UPDATED", "TYPE", &udt.keyspace, Some(&udt.name))
                }))
            }
            Statement::DropTable { name, if_exists } => {
                let keyspace = resolve_keyspace(name, session.keyspace.as_deref())?;
                let dropped = self.node.catalog.write().drop_table(
                    engine,
                    name,
                    *if_exists,
                    session.keyspace.as_deref(),
                )?;
                if dropped {
                    // As for a dropped keyspace (CASSANDRA-15252).
                    self.node.prepared.clear();
                }
                Ok(if dropped {
                    schema_change("DROPPED", "TABLE", &keyspace, Some(&name.name))
                } else {
                    ResultBody::Void
                })
            }
            Statement::Truncate(name) => {
                let table = self.table(name, session)?;
                self.node
                    .coordinator
                    .truncate(table.table_id(), TRUNCATE_TIMEOUT)
                    .map_err(coordinator_error)?;
                Ok(ResultBody::Void)
            }
            _ => Err(CqlError::Server(format!(
                "not a schema statement: {statement:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{rows, TestNode, TestResult};
    use crate::protocol::error::CqlError;
    use crate::results::ResultBody;

    fn is_change(result: &ResultBody, change: &str, target: &str, name: Option<&str>) -> bool {
        matches!(result, ResultBody::SchemaChange(c)
            if c.change == change && c.target == target && c.name.as_deref() == name)
    }

    #[test]
    fn tables_are_created_altered_and_dropped_with_schema_changes() -> TestResult {
        let mut node = TestNode::new()?;
        let created = node.run("CREATE TABLE t (k int PRIMARY KEY, v text)")?;
        assert!(
            is_change(&created, "CREATED", "TABLE", Some("t")),
            "{created:?}"
        );
        let again = node.run("CREATE TABLE IF NOT EXISTS t (k int PRIMARY KEY)")?;
        assert_eq!(
            again,
            ResultBody::Void,
            "IF NOT EXISTS on a table that exists"
        );
        let error = node.error("CREATE TABLE t (k int PRIMARY KEY)")?;
        assert!(matches!(error, CqlError::AlreadyExists { .. }), "{error:?}");
        let altered = node.run("ALTER TABLE t ADD w int")?;
        assert!(
            is_change(&altered, "UPDATED", "TABLE", Some("t")),
            "{altered:?}"
        );
        node.run("INSERT INTO t (k, v, w) VALUES (1, 'a', 2)")?;
        assert_eq!(
            node.rows("SELECT k, v, w FROM t")?,
            rows(&[&["1", "\"a\"", "2"]])
        );
        let dropped = node.run("DROP TABLE t")?;
        assert!(
            is_change(&dropped, "DROPPED", "TABLE", Some("t")),
            "{dropped:?}"
        );
        let error = node.error("SELECT * FROM t")?;
        assert!(
            matches!(&error, CqlError::Invalid(m) if m.contains("unconfigured table t")),
            "{error:?}"
        );
        assert_eq!(node.run("DROP TABLE IF EXISTS t")?, ResultBody::Void);
        Ok(())
    }

    #[test]
    fn keyspaces_change_without_restating_replication() -> TestResult {
        let mut node = TestNode::new()?;
        let altered = node.run("ALTER KEYSPACE ks WITH durable_writes = false")?;
        assert!(
            is_change(&altered, "UPDATED", "KEYSPACE", None),
            "{altered:?}"
        );
        let durable = node.rows(
            "SELECT durable_writes, replication FROM system_schema.keyspaces WHERE keyspace_name = 'ks'",
        )?;
        assert_eq!(durable.len(), 1);
        assert_eq!(durable[0][0], "false");
        assert!(
            durable[0][1].contains("\"replication_factor\": \"1\""),
            "{durable:?}"
        );
        let error = node.error("USE nowhere")?;
        assert!(
            matches!(&error, CqlError::Invalid(m) if m == "Keyspace 'nowhere' does not exist"),
            "{error:?}"
        );
        let dropped = node.run("DROP KEYSPACE ks")?;
        assert!(
            is_change(&dropped, "DROPPED", "KEYSPACE", None),
            "{dropped:?}"
        );
        Ok(())
    }

    #[test]
    fn types_in_use_stay_until_their_tables_go() -> TestResult {
        let mut node = TestNode::new()?;
        let created = node.run("CREATE TYPE addr (street text, zip int)")?;
        assert!(
            is_change(&created, "CREATED", "TYPE", Some("addr")),
            "{created:?}"
        );
        node.run("CREATE TABLE people (k int PRIMARY KEY, home frozen<addr>)")?;
        let error = node.error("DROP TYPE addr")?;
        assert!(matches!(error, CqlError::Invalid(_)), "{error:?}");
        node.run("DROP TABLE people")?;
        let dropped = node.run("DROP TYPE addr")?;
        assert!(
            is_change(&dropped, "DROPPED", "TYPE", Some("addr")),
            "{dropped:?}"
        );
        Ok(())
    }

    #[test]
    fn truncate_empties_a_table() -> TestResult {
        let mut node = TestNode::new()?;
        node.run_all(&[
            "CREATE TABLE t (k int PRIMARY KEY, v int)",
            "INSERT INTO t (k, v) VALUES (1, 1)",
            "INSERT INTO t (k, v) VALUES (2, 2)",
        ])?;
        assert_eq!(node.run("TRUNCATE t")?, ResultBody::Void);
        assert!(node.rows("SELECT * FROM t")?.is_empty());
        Ok(())
    }
}
