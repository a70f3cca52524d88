//! `CREATE/ALTER/DROP ROLE` (and the older `... USER` forms) and
//! `LIST ROLES`/`LIST USERS`, with Cassandra's rules for who may do what:
//! with authentication on, only a superuser manages roles, anyone may
//! change their own password, nobody changes their own superuser status
//! or drops the role they are logged in as. Without authentication the
//! anonymous session may do everything, as in Cassandra.

use bytes::Bytes;

use crate::auth::{self, Role};
use crate::cql::ast::{RoleOptions, Statement};
use crate::node::{Node, Session};
use crate::protocol::error::CqlError;
use crate::results::{ColumnSpec, ResultBody, Rows};
use crate::system_tables::{boolean, text};
use crate::types::CqlType;

fn invalid(message: impl Into<String>) -> CqlError {
    CqlError::Invalid(message.into())
}

/// The role the session logged in as; `None` without authentication.
fn current_role(node: &Node, session: &Session) -> Result<Option<Role>, CqlError> {
    let Some(name) = &session.user else {
        return Ok(None);
    };
    match auth::get(node.coordinator.engine(), name)? {
        Some(role) => Ok(Some(role)),
        None => Err(CqlError::Unauthorized(format!(
            "the role {name} of this session no longer exists"
        ))),
    }
}

fn require_superuser(current: &Option<Role>, action: &str) -> Result<(), CqlError> {
    match current {
        Some(role) if !role.superuser => Err(CqlError::Unauthorized(format!(
            "User {} does not have sufficient privileges to {action}; only superusers may",
            role.name
        ))),
        _ => Ok(()),
    }
}

/// Runs one role statement.
pub fn execute(
    node: &Node,
    session: &Session,
    statement: &Statement,
) -> Result<ResultBody, CqlError> {
    let engine = node.coordinator.engine();
    let current = current_role(node, session)?;
    match statement {
        Statement::CreateRole {
            name,
            if_not_exists,
            options,
        } => {
            require_superuser(&current, "create roles")?;
            if name.is_empty() {
                return Err(invalid("Role name can't be an empty string"));
            }
            if auth::get(engine, name)?.is_some() {
                if *if_not_exists {
                    return Ok(ResultBody::Void);
                }
                return Err(invalid(format!("{name} already exists")));
            }
            let salted_hash = match &options.password {
                Some(password) => Some(auth::hash_password(password)?),
                None => None,
            };
            auth::put(
                engine,
                &Role {
                    name: name.clone(),
                    salted_hash,
                    superuser: options.superuser.unwrap_or(false),
                    login: options.login.unwrap_or(false),
                },
            )?;
            Ok(ResultBody::Void)
        }
        Statement::AlterRole { name, options } => alter(engine, &current, name, options),
        Statement::DropRole { name, if_exists } => {
            require_superuser(&current, "drop roles")?;
            if current.as_ref().is_some_and(|role| &role.name == name) {
                return Err(invalid("Cannot DROP primary role for current login"));
            }
            if auth::get(engine, name)?.is_none() {
                if *if_exists {
                    return Ok(ResultBody::Void);
                }
                return Err(invalid(format!("{name} doesn't exist")));
            }
            auth::drop_role(engine, name)?;
            Ok(ResultBody::Void)
        }
        Statement::ListRoles { of, users } => list(engine, &current, of.as_deref(), *users),
        _ => Err(CqlError::Server(
            "internal error: a statement that is not about roles reached the role manager".into(),
        )),
    }
}

fn alter(
    engine: &storage_lsm::Engine,
    current: &Option<Role>,
    name: &str,
    options: &RoleOptions,
) -> Result<ResultBody, CqlError> {
    let Some(mut role) = auth::get(engine, name)? else {
        return Err(invalid(format!("{name} doesn't exist")));
    };
    let altering_self = current.as_ref().is_some_and(|c| c.name == name);
    if options.superuser.is_some() && altering_self {
        return Err(CqlError::Unauthorized(
            "You aren't allowed to alter your own superuser status".into(),
        ));
    }
    let only_password = options.superuser.is_none() && options.login.is_none();
    if !(altering_self && only_password) {
        require_superuser(current, "alter roles other than their own password")?;
    }
    if let Some(password) = &options.password {
        role.salted_hash = Some(auth::hash_password(password)?);
    }
    if let Some(superuser) = options.superuser {
        role.superuser = superuser;
    }
    if let Some(login) = options.login {
        role.login = login;
    }
    auth::put(engine, &role)?;
    Ok(ResultBody::Void)
}

fn spec(name: &str, ty: CqlType) -> ColumnSpec {
    ColumnSpec {
        keyspace: "system_auth".into(),
        table: "roles".into(),
        name: name.into(),
        ty,
    }
}

fn list(
    engine: &storage_lsm::Engine,
    current: &Option<Role>,
    of: Option<&str>,
    users: bool,
) -> Result<ResultBody, CqlError> {
    let mut roles = auth::list(engine)?;
    if let Some(of) = of {
        if !roles.iter().any(|r| r.name == of) {
            return Err(invalid(format!("{of} doesn't exist")));
        }
        roles.retain(|r| r.name == of);
    }
    // A role that is not a superuser sees only itself.
    if let Some(role) = current.as_ref().filter(|r| !r.superuser) {
        roles.retain(|r| r.name == role.name);
    }
    let (columns, rows) = if users {
        roles.retain(|r| r.login);
        (
            vec![
                spec("name", CqlType::Text),
                spec("super", CqlType::Boolean),
                spec("datacenters", CqlType::Text),
            ],
            roles
                .iter()
                .map(|r| vec![text(&r.name), boolean(r.superuser), text("ALL")])
                .collect(),
        )
    } else {
        let options = CqlType::Map(Box::new(CqlType::Text), Box::new(CqlType::Text));
        (
            vec![
                spec("role", CqlType::Text),
                spec("super", CqlType::Boolean),
                spec("login", CqlType::Boolean),
                spec("options", options),
                spec("datacenters", CqlType::Text),
            ],
            roles
                .iter()
                .map(|r| {
                    vec![
                        text(&r.name),
                        boolean(r.superuser),
                        boolean(r.login),
                        Some(Bytes::from_static(&[0, 0, 0, 0])),
                        text("ALL"),
                    ]
                })
                .collect(),
        )
    };
    Ok(ResultBody::Rows(Rows {
        columns,
        rows,
        paging_state: None,
    }))
}
