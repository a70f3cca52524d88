//! A hand-written recursive-descent parser for CQL statements. Errors say
//! what was expected, what was found, and at which line and column.

use crate::cql::ast::*;
use crate::cql::lexer::{tokenize, Spanned, Token};
use crate::types::CqlType;

/// A statement that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}:{column} {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses one statement (a trailing `;` is allowed).
pub fn parse(text: &str) -> std::result::Result<Statement, SyntaxError> {
    let tokens = tokenize(text).map_err(|e| SyntaxError {
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    check_nesting(&tokens)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        binds: 0,
    };
    let statement = parser.statement()?;
    parser.eat_symbol(";");
    if let Some(extra) = parser.peek() {
        return Err(parser.error_at(extra, "end of statement"));
    }
    Ok(statement)
}

/// How deeply brackets may nest in one statement (`((1))`, `[[1]]`,
/// `{1: {2: 3}}`, `CAST(CAST(...))`). The parser and the executor recurse
/// once per level, so a statement nested thousands deep would exhaust a
/// request thread's stack; it is refused before parsing instead.
pub const NESTING_DEPTH_MAX: usize = 64;

/// Refuses a statement whose brackets nest deeper than [`NESTING_DEPTH_MAX`],
/// naming where the limit was passed.
fn check_nesting(tokens: &[Spanned]) -> std::result::Result<(), SyntaxError> {
    let mut depth = 0usize;
    for spanned in tokens {
        match spanned.token {
            Token::Symbol("(" | "[" | "{") => {
                depth += 1;
                if depth > NESTING_DEPTH_MAX {
                    return Err(SyntaxError {
                        line: spanned.line,
                        column: spanned.column,
                        message: format!(
                            "brackets nest deeper than {NESTING_DEPTH_MAX} levels; \
                             flatten the expression"
                        ),
                    });
                }
            }
            Token::Symbol(")" | "]" | "}") => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

struct Parser {
    tokens: Vec<Spanned>,
    at: usize,
    binds: usize,
}

type Result<T> = std::result::Result<T, SyntaxError>;

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.at)
    }

    fn peek_token(&self) -> Option<&Token> {
        self.peek().map(|s| &s.token)
    }

    fn error_at(&self, spanned: &Spanned, expected: &str) -> SyntaxError {
        SyntaxError {
            line: spanned.line,
            column: spanned.column,
            message: format!("mismatched input '{}' expecting {expected}", spanned.token),
        }
    }

    fn error(&self, expected: &str) -> SyntaxError {
        match self.peek() {
            Some(spanned) => self.error_at(spanned, expected),
            None => {
                let (line, column) = self
                    .tokens
                    .last()
                    .map_or((1, 1), |t| (t.line, t.column + t.token.to_string().len()));
                SyntaxError {
                    line,
                    column,
                    message: format!("unexpected end of statement, expecting {expected}"),
                }
            }
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek_token(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.is_keyword(keyword) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<()> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.error(&keyword.to_ascii_uppercase()))
        }
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek_token(), Some(Token::Symbol(s)) if *s == symbol)
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if self.is_symbol(symbol) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<()> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(self.error(&format!("'{symbol}'")))
        }
    }

    /// An identifier: unquoted (lower-cased) or quoted (kept).
    fn identifier(&mut self) -> Result<String> {
        match self.peek_token() {
            Some(Token::Word(w)) => {
                let name = w.to_ascii_lowercase();
                self.at += 1;
                Ok(name)
            }
            Some(Token::Quoted(q)) => {
                let name = q.clone();
                self.at += 1;
                Ok(name)
            }
            _ => Err(self.error("an identifier")),
        }
    }

    fn qualified_name(&mut self) -> Result<QualifiedName> {
        let first = self.identifier()?;
        if self.eat_symbol(".") {
            let name = self.identifier()?;
            Ok(QualifiedName {
                keyspace: Some(first),
                name,
            })
        } else {
            Ok(QualifiedName {
                keyspace: None,
                name: first,
            })
        }
    }

    fn if_not_exists(&mut self) -> Result<bool> {
        if self.eat_keyword("IF") {
            self.expect_keyword("NOT")?;
            self.expect_keyword("EXISTS")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn if_exists(&mut self) -> Result<bool> {
        if self.eat_keyword("IF") {
            self.expect_keyword("EXISTS")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn statement(&mut self) -> Result<Statement> {
        let Some(Token::Word(first)) = self.peek_token().cloned() else {
            return Err(self.error("a statement (SELECT, INSERT, UPDATE, DELETE, CREATE, ...)"));
        };
        match first.to_ascii_uppercase().as_str() {
            "USE" => {
                self.at += 1;
                Ok(Statement::Use(self.identifier()?))
            }
            "CREATE" => self.create(),
            "ALTER" => self.alter(),
            "DROP" => self.drop(),
            "TRUNCATE" => {
                self.at += 1;
                self.eat_keyword("TABLE");
                Ok(Statement::Truncate(self.qualified_name()?))
            }
            "INSERT" => self.insert(),
            "UPDATE" => self.update(),
            "DELETE" => self.delete(),
            "SELECT" => self.select(),
            "BEGIN" => self.batch(),
            "DESCRIBE" | "DESC" => self.describe(),
            "LIST" if self.list_roles_ahead() => self.list_roles(),
            "GRANT" | "REVOKE" | "LIST" => {
                self.at = self.tokens.len();
                Ok(Statement::NotYetSupported(format!(
                    "{} (permissions are not enforced yet; every role may do everything)",
                    first.to_ascii_uppercase()
                )))
            }
            _ => Err(self.error("a statement (SELECT, INSERT, UPDATE, DELETE, CREATE, ...)")),
        }
    }

    fn create(&mut self) -> Result<Statement> {
        self.expect_keyword("CREATE")?;
        if self.eat_keyword("KEYSPACE") || self.eat_keyword("SCHEMA") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.identifier()?;
            self.expect_keyword("WITH")?;
            let options = self.options()?;
            return Ok(Statement::CreateKeyspace {
                name,
                if_not_exists,
                options,
            });
        }
        if self.eat_keyword("TABLE") || self.eat_keyword("COLUMNFAMILY") {
            return self.create_table();
        }
        if self.eat_keyword("TYPE") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.qualified_name()?;
            self.expect_symbol("(")?;
            let mut fields = Vec::new();
            loop {
                let field = self.identifier()?;
                fields.push((field, self.cql_type()?));
                if self.eat_symbol(")") {
                    break;
                }
                self.expect_symbol(",")?;
            }
            return Ok(Statement::CreateType {
                name,
                if_not_exists,
                fields,
            });
        }
        if self.is_keyword("ROLE") || self.is_keyword("USER") {
            let user = self.eat_keyword("USER");
            if !user {
                self.expect_keyword("ROLE")?;
            }
            let if_not_exists = self.if_not_exists()?;
            let name = self.role_name()?;
            let mut options = self.role_options(user)?;
            if user {
                // A user is a role that may log in.
                options.login = Some(true);
            }
            return Ok(Statement::CreateRole {
                name,
                if_not_exists,
                options,
            });
        }
        let what = match self.peek_token() {
            Some(Token::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err(self.error("KEYSPACE or TABLE")),
        };
        let feature = match what.as_str() {
            "INDEX" | "CUSTOM" => "secondary indexes",
            "MATERIALIZED" => "materialized views",
            "TYPE" => "user-defined types",
            "ROLE" | "USER" => "roles",
            "FUNCTION" | "OR" | "AGGREGATE" => "user-defined functions",
            "TRIGGER" => "triggers",
            _ => return Err(self.error("KEYSPACE or TABLE")),
        };
        self.at = self.tokens.len();
        Ok(Statement::NotYetSupported(format!(
            "CREATE {what} ({feature})"
        )))
    }

    fn create_table(&mut self) -> Result<Statement> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.qualified_name()?;
        self.expect_symbol("(")?;
        let mut columns = Vec::new();
        let mut partition_key = Vec::new();
        let mut clustering = Vec::new();
        loop {
            if self.eat_keyword("PRIMARY") {
                self.expect_keyword("KEY")?;
                self.expect_symbol("(")?;
                if self.eat_symbol("(") {
                    partition_key.push(self.identifier()?);
                    while self.eat_symbol(",") {
                        partition_key.push(self.identifier()?);
                    }
                    self.expect_symbol(")")?;
                } else {
                    partition_key.push(self.identifier()?);
                }
                while self.eat_symbol(",") {
                    clustering.push(self.identifier()?);
                }
                self.expect_symbol(")")?;
            } else {
                let column = self.identifier()?;
                let ty = self.cql_type()?;
                let is_static = self.eat_keyword("STATIC");
                if self.eat_keyword("PRIMARY") {
                    self.expect_keyword("KEY")?;
                    partition_key.push(column.clone());
                }
                columns.push(ColumnDef {
                    name: column,
                    ty,
                    is_static,
                });
            }
            if self.eat_symbol(")") {
                break;
            }
            self.expect_symbol(",")?;
            // A trailing comma before the closing parenthesis is allowed.
            if self.eat_symbol(")") {
                break;
            }
        }
        let mut clustering_order = Vec::new();
        let mut options = Vec::new();
        if self.eat_keyword("WITH") {
            loop {
                if self.eat_keyword("CLUSTERING") {
                    self.expect_keyword("ORDER")?;
                    self.expect_keyword("BY")?;
                    self.expect_symbol("(")?;
                    loop {
                        let column = self.identifier()?;
                        let descending = if self.eat_keyword("DESC") {
                            true
                        } else {
                            self.eat_keyword("ASC");
                            false
                        };
                        clustering_order.push((column, descending));
                        if !self.eat_symbol(",") {
                            break;
                        }
                    }
                    self.expect_symbol(")")?;
                } else if self.eat_keyword("COMPACT") {
                    return Err(SyntaxError {
                        line: 1,
                        column: 1,
                        message:
                            "COMPACT STORAGE is not supported (it is deprecated in Cassandra 4)"
                                .into(),
                    });
                } else {
                    options.push(self.option()?);
                }
                if !self.eat_keyword("AND") {
                    break;
                }
            }
        }
        Ok(Statement::CreateTable {
            name,
            if_not_exists,
            columns,
            partition_key,
            clustering,
            clustering_order,
            options,
        })
    }

    /// A type as written in a column definition.
    fn cql_type(&mut self) -> Result<CqlType> {
        let start = self.at;
        let mut depth = 0i32;
        let mut text = String::new();
        loop {
            match self.peek_token() {
                Some(Token::Word(w)) if depth > 0 || text.is_empty() => {
                    text.push_str(w);
                    self.at += 1;
                }
                Some(Token::Quoted(name)) if depth > 0 || text.is_empty() => {
                    text.push('"');
                    text.push_str(&name.replace('"', "\"\""));
                    text.push('"');
                    self.at += 1;
                }
                // A custom type as its class string.
                Some(Token::Str(class)) if depth > 0 || text.is_empty() => {
                    text.push('\'');
                    text.push_str(&class.replace('\'', "''"));
                    text.push('\'');
                    self.at += 1;
                }
                Some(Token::Symbol("<")) => {
                    depth += 1;
                    text.push('<');
                    self.at += 1;
                }
                Some(Token::Symbol(">")) if depth > 0 => {
                    depth -= 1;
                    text.push('>');
                    self.at += 1;
                }
                Some(Token::Symbol(",")) if depth > 0 => {
                    text.push(',');
                    self.at += 1;
                }
                _ => break,
            }
            if depth == 0 && !text.is_empty() && !self.is_symbol("<") {
                break;
            }
        }
        CqlType::parse(&text).map_err(|e| {
            let spanned = self.tokens.get(start).cloned();
            SyntaxError {
                line: spanned.as_ref().map_or(1, |s| s.line),
                column: spanned.as_ref().map_or(1, |s| s.column),
                message: e.0,
            }
        })
    }

    fn options(&mut self) -> Result<Vec<(String, OptionValue)>> {
        let mut options = vec![self.option()?];
        while self.eat_keyword("AND") {
            options.push(self.option()?);
        }
        Ok(options)
    }

    fn option(&mut self) -> Result<(String, OptionValue)> {
        let name = self.identifier()?;
        self.expect_symbol("=")?;
        if self.eat_symbol("{") {
            let mut entries = Vec::new();
            if !self.eat_symbol("}") {
                loop {
                    let key = self.option_scalar()?;
                    self.expect_symbol(":")?;
                    let value = self.option_scalar()?;
                    entries.push((key, value));
                    if self.eat_symbol("}") {
                        break;
                    }
                    self.expect_symbol(",")?;
                }
            }
            return Ok((name, OptionValue::Map(entries)));
        }
        let Term::Literal(literal) = self.term()? else {
            return Err(self.error("a constant option value"));
        };
        Ok((name, OptionValue::Literal(literal)))
    }

    fn option_scalar(&mut self) -> Result<String> {
        let value = match self.peek_token() {
            Some(Token::Str(s)) => s.clone(),
            Some(Token::Integer(n)) | Some(Token::Float(n)) => n.clone(),
            Some(Token::Word(w)) => w.clone(),
            _ => return Err(self.error("an option value")),
        };
        self.at += 1;
        Ok(value)
    }

    fn alter(&mut self) -> Result<Statement> {
        self.expect_keyword("ALTER")?;
        if self.eat_keyword("KEYSPACE") || self.eat_keyword("SCHEMA") {
            let name = self.identifier()?;
            self.expect_keyword("WITH")?;
            let options = self.options()?;
            return Ok(Statement::AlterKeyspace { name, options });
        }
        if self.is_keyword("ROLE") || self.is_keyword("USER") {
            let user = self.eat_keyword("USER");
            if !user {
                self.expect_keyword("ROLE")?;
            }
            let name = self.role_name()?;
            let options = self.role_options(user)?;
            return Ok(Statement::AlterRole { name, options });
        }
        if self.eat_keyword("TABLE") || self.eat_keyword("COLUMNFAMILY") {
            return self.alter_table();
        }
        if self.eat_keyword("TYPE") {
            return self.alter_type();
        }
        let what = match self.peek_token() {
            Some(Token::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err(self.error("KEYSPACE, TABLE, TYPE, ROLE or USER")),
        };
        self.at = self.tokens.len();
        Ok(Statement::NotYetSupported(format!("ALTER {what}")))
    }

    fn alter_table(&mut self) -> Result<Statement> {
        let if_exists = self.if_exists()?;
        let name = self.qualified_name()?;
        let change = if self.eat_keyword("ADD") {
            let if_not_exists = self.if_not_exists()?;
            let mut columns = Vec::new();
            let grouped = self.eat_symbol("(");
            loop {
                let column = self.identifier()?;
                let ty = self.cql_type()?;
                let is_static = self.eat_keyword("STATIC");
                columns.push(ColumnDef {
                    name: column,
                    ty,
                    is_static,
                });
                if !grouped || !self.eat_symbol(",") {
                    break;
                }
            }
            if grouped {
                self.expect_symbol(")")?;
            }
            AlterTable::Add {
                if_not_exists,
                columns,
            }
        } else if self.eat_keyword("DROP") {
            let if_exists = self.if_exists()?;
            let mut columns = Vec::new();
            if self.eat_symbol("(") {
                columns.push(self.identifier()?);
                while self.eat_symbol(",") {
                    columns.push(self.identifier()?);
                }
                self.expect_symbol(")")?;
            } else {
                columns.push(self.identifier()?);
            }
            AlterTable::Drop { if_exists, columns }
        } else if self.eat_keyword("RENAME") {
            let if_exists = self.if_exists()?;
            AlterTable::Rename {
                if_exists,
                pairs: self.rename_pairs()?,
            }
        } else if self.eat_keyword("WITH") {
            AlterTable::With(self.options()?)
        } else if self.is_keyword("ALTER") {
            self.at = self.tokens.len();
            return Ok(Statement::NotYetSupported(
                "changing a column's type (Cassandra 4 and later refuse it too)".into(),
            ));
        } else {
            return Err(self.error("ADD, DROP, RENAME or WITH"));
        };
        Ok(Statement::AlterTable {
            name,
            if_exists,
            change,
        })
    }

    fn alter_type(&mut self) -> Result<Statement> {
        let if_exists = self.if_exists()?;
        let name = self.qualified_name()?;
        let change = if self.eat_keyword("ADD") {
            let if_not_exists = self.if_not_exists()?;
            let field = self.identifier()?;
            let ty = self.cql_type()?;
            AlterType::Add {
                if_not_exists,
                field,
                ty,
            }
        } else if self.eat_keyword("RENAME") {
            let if_exists = self.if_exists()?;
            AlterType::Rename {
                if_exists,
                pairs: self.rename_pairs()?,
            }
        } else {
            return Err(self.error("ADD or RENAME"));
        };
        Ok(Statement::AlterType {
            name,
            if_exists,
            change,
        })
    }

    /// `a TO b AND c TO d`
    fn rename_pairs(&mut self) -> Result<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        loop {
            let from = self.identifier()?;
            self.expect_keyword("TO")?;
            let to = self.identifier()?;
            pairs.push((from, to));
            if !self.eat_keyword("AND") {
                return Ok(pairs);
            }
        }
    }

    fn drop(&mut self) -> Result<Statement> {
        self.expect_keyword("DROP")?;
        if self.eat_keyword("KEYSPACE") || self.eat_keyword("SCHEMA") {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropKeyspace {
                if_exists,
                name: self.identifier()?,
            });
        }
        if self.eat_keyword("TABLE") || self.eat_keyword("COLUMNFAMILY") {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropTable {
                if_exists,
                name: self.qualified_name()?,
            });
        }
        if self.eat_keyword("TYPE") {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropType {
                if_exists,
                name: self.qualified_name()?,
            });
        }
        if self.eat_keyword("ROLE") || self.eat_keyword("USER") {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropRole {
                if_exists,
                name: self.role_name()?,
            });
        }
        let what = match self.peek_token() {
            Some(Token::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err(self.error("KEYSPACE or TABLE")),
        };
        self.at = self.tokens.len();
        Ok(Statement::NotYetSupported(format!("DROP {what}")))
    }

    /// A role name: an identifier or a string.
    fn role_name(&mut self) -> Result<String> {
        if let Some(Token::Str(name)) = self.peek_token() {
            let name = name.clone();
            self.at += 1;
            return Ok(name);
        }
        self.identifier()
    }

    /// `WITH PASSWORD = 'p' AND LOGIN = true AND SUPERUSER = false`, or for
    /// users, `WITH PASSWORD 'p' [SUPERUSER | NOSUPERUSER]`.
    fn role_options(&mut self, user: bool) -> Result<RoleOptions> {
        let mut options = RoleOptions::default();
        if self.eat_keyword("WITH") {
            loop {
                let name = self.identifier()?;
                if user || !self.is_symbol("=") {
                    if name != "password" {
                        return Err(self.error("'='"));
                    }
                } else {
                    self.expect_symbol("=")?;
                }
                match name.as_str() {
                    "password" => match self.peek_token() {
                        Some(Token::Str(password)) => {
                            options.password = Some(password.clone());
                            self.at += 1;
                        }
                        _ => return Err(self.error("a password string")),
                    },
                    "login" => options.login = Some(self.boolean_constant()?),
                    "superuser" => options.superuser = Some(self.boolean_constant()?),
                    "options" | "access" => {
                        self.at = self.tokens.len();
                        return Ok(options);
                    }
                    _ => {
                        return Err(SyntaxError {
                            line: 1,
                            column: 1,
                            message: format!(
                                "unknown role option {name}; known: PASSWORD, LOGIN, SUPERUSER"
                            ),
                        })
                    }
                }
                if !self.eat_keyword("AND") {
                    break;
                }
            }
        }
        if user {
            if self.eat_keyword("SUPERUSER") {
                options.superuser = Some(true);
            } else if self.eat_keyword("NOSUPERUSER") {
                options.superuser = Some(false);
            }
        }
        Ok(options)
    }

    fn boolean_constant(&mut self) -> Result<bool> {
        let value = match self.peek_token() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => true,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => false,
            _ => return Err(self.error("true or false")),
        };
        self.at += 1;
        Ok(value)
    }

    fn list_roles_ahead(&self) -> bool {
        matches!(
            self.tokens.get(self.at + 1).map(|s| &s.token),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("ROLES") || w.eq_ignore_ascii_case("USERS")
        )
    }

    /// `LIST ROLES [OF name] [NORECURSIVE]` or `LIST USERS`.
    fn list_roles(&mut self) -> Result<Statement> {
        self.expect_keyword("LIST")?;
        if self.eat_keyword("USERS") {
            return Ok(Statement::ListRoles {
                of: None,
                users: true,
            });
        }
        self.expect_keyword("ROLES")?;
        let of = if self.eat_keyword("OF") {
            Some(self.role_name()?)
        } else {
            None
        };
        self.eat_keyword("NORECURSIVE");
        Ok(Statement::ListRoles { of, users: false })
    }

    fn using(&mut self) -> Result<Using> {
        let mut using = Using::default();
        if self.eat_keyword("USING") {
            loop {
                if self.eat_keyword("TTL") {
                    using.ttl = Some(self.term()?);
                } else if self.eat_keyword("TIMESTAMP") {
                    using.timestamp = Some(self.term()?);
                } else {
                    return Err(self.error("TTL or TIMESTAMP"));
                }
                if !self.eat_keyword("AND") {
                    break;
                }
            }
        }
        Ok(using)
    }

    fn insert(&mut self) -> Result<Statement> {
        self.expect_keyword("INSERT")?;
        self.expect_keyword("INTO")?;
        let table = self.qualified_name()?;
        if self.eat_keyword("JSON") {
            let value = self.term()?;
            let mut default_unset = false;
            if self.eat_keyword("DEFAULT") {
                if self.eat_keyword("UNSET") {
                    default_unset = true;
                } else {
                    self.expect_keyword("NULL")?;
                }
            }
            let if_not_exists = self.if_not_exists()?;
            let using = self.using()?;
            return Ok(Statement::Insert {
                table,
                columns: Vec::new(),
                values: Vec::new(),
                json: Some((value, default_unset)),
                if_not_exists,
                using,
            });
        }
        self.expect_symbol("(")?;
        let mut columns = vec![self.identifier()?];
        while self.eat_symbol(",") {
            columns.push(self.identifier()?);
        }
        self.expect_symbol(")")?;
        self.expect_keyword("VALUES")?;
        self.expect_symbol("(")?;
        let mut values = vec![self.term()?];
        while self.eat_symbol(",") {
            values.push(self.term()?);
        }
        self.expect_symbol(")")?;
        let if_not_exists = self.if_not_exists()?;
        let using = self.using()?;
        Ok(Statement::Insert {
            table,
            columns,
            values,
            json: None,
            if_not_exists,
            using,
        })
    }

    fn update(&mut self) -> Result<Statement> {
        self.expect_keyword("UPDATE")?;
        let table = self.qualified_name()?;
        let using = self.using()?;
        self.expect_keyword("SET")?;
        let mut assignments = Vec::new();
        loop {
            let column = self.identifier()?;
            let assignment = self.assignment(&column)?;
            assignments.push((column, assignment));
            if !self.eat_symbol(",") {
                break;
            }
        }
        self.expect_keyword("WHERE")?;
        let relations = self.relations()?;
        let has_conditions = self.eat_keyword("IF");
        if has_conditions {
            self.at = self.tokens.len();
        }
        Ok(Statement::Update {
            table,
            using,
            assignments,
            relations,
            has_conditions,
        })
    }

    /// What follows a column name in a `SET` clause.
    fn assignment(&mut self, column: &str) -> Result<Assignment> {
        if self.eat_symbol(".") {
            let field = self.identifier()?;
            self.expect_symbol("=")?;
            return Ok(Assignment::SetField(field, self.term()?));
        }
        if self.eat_symbol("[") {
            let key = self.term()?;
            self.expect_symbol("]")?;
            self.expect_symbol("=")?;
            return Ok(Assignment::SetElement(key, self.term()?));
        }
        self.expect_symbol("=")?;
        let names_column = |token: Option<&Token>| match token {
            Some(Token::Word(w)) => w.to_ascii_lowercase() == column,
            Some(Token::Quoted(q)) => q == column,
            _ => false,
        };
        let next = self.tokens.get(self.at + 1).map(|t| &t.token);
        if names_column(self.peek_token()) && matches!(next, Some(Token::Symbol("+" | "-"))) {
            self.at += 1;
            let add = self.eat_symbol("+");
            if !add {
                self.expect_symbol("-")?;
            }
            let value = self.term()?;
            return Ok(if add {
                Assignment::Add(value)
            } else {
                Assignment::Remove(value)
            });
        }
        let value = self.term()?;
        if self.eat_symbol("+") {
            if !names_column(self.peek_token()) {
                return Err(self.error(&format!(
                    "the column {column} (as in {column} = [...] + {column})"
                )));
            }
            self.at += 1;
            return Ok(Assignment::Prepend(value));
        }
        Ok(Assignment::Set(value))
    }

    fn delete(&mut self) -> Result<Statement> {
        self.expect_keyword("DELETE")?;
        let mut columns = Vec::new();
        if !self.is_keyword("FROM") {
            loop {
                let column = self.identifier()?;
                let element = if self.eat_symbol("[") {
                    let key = self.term()?;
                    self.expect_symbol("]")?;
                    Deleted::Element(key)
                } else if self.eat_symbol(".") {
                    Deleted::Field(self.identifier()?)
                } else {
                    Deleted::Column
                };
                columns.push((column, element));
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        self.expect_keyword("FROM")?;
        let table = self.qualified_name()?;
        let using = self.using()?;
        self.expect_keyword("WHERE")?;
        let relations = self.relations()?;
        let has_conditions = self.eat_keyword("IF");
        if has_conditions {
            self.at = self.tokens.len();
        }
        Ok(Statement::Delete {
            table,
            columns,
            using,
            relations,
            has_conditions,
        })
    }

    fn selector(&mut self) -> Result<Selector> {
        let selector = self.unaliased_selector()?;
        if self.eat_keyword("AS") {
            return Ok(Selector::Aliased(Box::new(selector), self.identifier()?));
        }
        Ok(selector)
    }

    fn unaliased_selector(&mut self) -> Result<Selector> {
        if matches!(
            self.peek_token(),
            Some(
                Token::Str(_)
                    | Token::Integer(_)
                    | Token::Float(_)
                    | Token::Uuid(_)
                    | Token::Hex(_)
                    | Token::Symbol("-" | "(" | "?" | ":")
            )
        ) || (["null", "true", "false"].iter().any(|k| self.is_keyword(k))
            && !matches!(
                self.tokens.get(self.at + 1).map(|t| &t.token),
                Some(Token::Symbol("("))
            ))
        {
            return Ok(Selector::Term(self.term()?));
        }
        let name = self.identifier()?;
        let selector = if self.eat_symbol("(") {
            if name == "cast" {
                let inner = self.unaliased_selector()?;
                self.expect_keyword("AS")?;
                let ty = self.cql_type()?;
                self.expect_symbol(")")?;
                Selector::Cast(Box::new(inner), ty)
            } else if name == "count" && self.eat_symbol("*") {
                self.expect_symbol(")")?;
                Selector::CountAll
            } else {
                let mut args = Vec::new();
                if !self.eat_symbol(")") {
                    args.push(self.selector()?);
                    while self.eat_symbol(",") {
                        args.push(self.selector()?);
                    }
                    self.expect_symbol(")")?;
                }
                Selector::Function { name, args }
            }
        } else {
            Selector::Column(name)
        };
        let mut selector = selector;
        while self.eat_symbol(".") {
            selector = Selector::Field(Box::new(selector), self.identifier()?);
        }
        Ok(selector)
    }

    fn select(&mut self) -> Result<Statement> {
        self.expect_keyword("SELECT")?;
        let json = self.eat_keyword("JSON");
        let distinct = self.eat_keyword("DISTINCT");
        let mut selectors = Vec::new();
        if !self.eat_symbol("*") {
            selectors.push(self.selector()?);
            while self.eat_symbol(",") {
                selectors.push(self.selector()?);
            }
        }
        self.expect_keyword("FROM")?;
        let table = self.qualified_name()?;
        let relations = if self.eat_keyword("WHERE") {
            self.relations()?
        } else {
            Vec::new()
        };
        let mut group_by = Vec::new();
        if self.eat_keyword("GROUP") {
            self.expect_keyword("BY")?;
            group_by.push(self.identifier()?);
            while self.eat_symbol(",") {
                group_by.push(self.identifier()?);
            }
        }
        let mut order_by = Vec::new();
        if self.eat_keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let column = self.identifier()?;
                let descending = if self.eat_keyword("DESC") {
                    true
                } else {
                    self.eat_keyword("ASC");
                    false
                };
                order_by.push((column, descending));
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let mut per_partition_limit = None;
        if self.eat_keyword("PER") {
            self.expect_keyword("PARTITION")?;
            self.expect_keyword("LIMIT")?;
            per_partition_limit = Some(self.term()?);
        }
        let limit = if self.eat_keyword("LIMIT") {
            Some(self.term()?)
        } else {
            None
        };
        let allow_filtering = if self.eat_keyword("ALLOW") {
            self.expect_keyword("FILTERING")?;
            true
        } else {
            false
        };
        Ok(Statement::Select {
            table,
            json,
            distinct,
            selectors,
            relations,
            group_by,
            order_by,
            per_partition_limit,
            limit,
            allow_filtering,
        })
    }

    fn describe(&mut self) -> Result<Statement> {
        self.at += 1;
        self.eat_keyword("FULL");
        let target = if self.eat_keyword("KEYSPACES") {
            DescribeTarget::Keyspaces
        } else if self.eat_keyword("KEYSPACE") {
            if self.peek().is_some() && !self.is_symbol(";") {
                DescribeTarget::Keyspace(Some(self.identifier()?))
            } else {
                DescribeTarget::Keyspace(None)
            }
        } else if self.eat_keyword("TABLES") || self.eat_keyword("COLUMNFAMILIES") {
            DescribeTarget::Tables
        } else if self.eat_keyword("TABLE") || self.eat_keyword("COLUMNFAMILY") {
            DescribeTarget::Table(self.qualified_name()?)
        } else if self.eat_keyword("SCHEMA") {
            DescribeTarget::Schema
        } else if self.eat_keyword("CLUSTER") {
            DescribeTarget::Cluster
        } else if self.eat_keyword("TYPES") {
            DescribeTarget::Types
        } else if self.eat_keyword("TYPE") {
            DescribeTarget::Type(self.qualified_name()?)
        } else if self.eat_keyword("FUNCTIONS") || self.eat_keyword("AGGREGATES") {
            DescribeTarget::EmptyList
        } else if ["FUNCTION", "AGGREGATE", "INDEX", "MATERIALIZED"]
            .iter()
            .any(|k| self.is_keyword(k))
        {
            self.at = self.tokens.len();
            return Ok(Statement::NotYetSupported(
                "DESCRIBE of types, functions, aggregates, indexes and views".into(),
            ));
        } else {
            DescribeTarget::Name(self.qualified_name()?)
        };
        Ok(Statement::Describe(target))
    }

    fn batch(&mut self) -> Result<Statement> {
        self.expect_keyword("BEGIN")?;
        let logged = !(self.eat_keyword("UNLOGGED") || self.eat_keyword("COUNTER"));
        self.expect_keyword("BATCH")?;
        let using = self.using()?;
        let mut statements = Vec::new();
        while !self.is_keyword("APPLY") {
            let statement = match self.peek_token() {
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("INSERT") => self.insert()?,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("UPDATE") => self.update()?,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("DELETE") => self.delete()?,
                _ => return Err(self.error("INSERT, UPDATE, DELETE or APPLY BATCH")),
            };
            statements.push(statement);
            self.eat_symbol(";");
        }
        self.expect_keyword("APPLY")?;
        self.expect_keyword("BATCH")?;
        Ok(Statement::Batch {
            logged,
            using,
            statements,
        })
    }

    fn operator(&mut self) -> Result<Operator> {
        let op = match self.peek_token() {
            Some(Token::Symbol("=")) => Operator::Eq,
            Some(Token::Symbol("<")) => Operator::Lt,
            Some(Token::Symbol("<=")) => Operator::Le,
            Some(Token::Symbol(">")) => Operator::Gt,
            Some(Token::Symbol(">=")) => Operator::Ge,
            Some(Token::Symbol("!=")) => Operator::Ne,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("IN") => Operator::In,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("CONTAINS") => {
                self.at += 1;
                if self.eat_keyword("KEY") {
                    return Ok(Operator::ContainsKey);
                }
                return Ok(Operator::Contains);
            }
            _ => return Err(self.error("an operator (=, <, <=, >, >=, IN, CONTAINS)")),
        };
        self.at += 1;
        Ok(op)
    }

    fn relations(&mut self) -> Result<Vec<Relation>> {
        let mut relations = vec![self.relation()?];
        while self.eat_keyword("AND") {
            relations.push(self.relation()?);
        }
        Ok(relations)
    }

    fn relation(&mut self) -> Result<Relation> {
        if self.eat_symbol("(") {
            let mut columns = vec![self.identifier()?];
            while self.eat_symbol(",") {
                columns.push(self.identifier()?);
            }
            self.expect_symbol(")")?;
            let op = self.operator()?;
            let value = self.term()?;
            return Ok(Relation::MultiColumn { columns, op, value });
        }
        if self.is_keyword("TOKEN")
            && matches!(
                self.tokens.get(self.at + 1).map(|t| &t.token),
                Some(Token::Symbol("("))
            )
        {
            self.at += 2;
            let mut columns = vec![self.identifier()?];
            while self.eat_symbol(",") {
                columns.push(self.identifier()?);
            }
            self.expect_symbol(")")?;
            let op = self.operator()?;
            let value = self.term()?;
            return Ok(Relation::Token { columns, op, value });
        }
        let column = self.identifier()?;
        let op = self.operator()?;
        let value = self.term()?;
        Ok(Relation::Column { column, op, value })
    }

    fn term(&mut self) -> Result<Term> {
        let Some(spanned) = self.peek().cloned() else {
            return Err(self.error("a value"));
        };
        self.at += 1;
        Ok(match spanned.token {
            Token::Str(s) => Term::Literal(Literal::Str(s)),
            Token::Integer(n) => Term::Literal(Literal::Integer(n)),
            Token::Float(f) => Term::Literal(Literal::Float(f)),
            Token::Uuid(u) => Term::Literal(Literal::Uuid(u)),
            Token::Hex(b) => Term::Literal(Literal::Blob(b)),
            Token::Symbol("-") => self.negated_number(&spanned)?,
            Token::Symbol("?") => {
                let index = self.binds;
                self.binds += 1;
                Term::Bind(BindMarker::Positional(index))
            }
            Token::Symbol(":") => {
                let name = self.identifier()?;
                let index = self.binds;
                self.binds += 1;
                Term::Bind(BindMarker::Named(name, index))
            }
            Token::Symbol("[") => {
                let mut items = Vec::new();
                if !self.eat_symbol("]") {
                    items.push(self.term()?);
                    while self.eat_symbol(",") {
                        items.push(self.term()?);
                    }
                    self.expect_symbol("]")?;
                }
                Term::List(items)
            }
            Token::Symbol("{") => self.set_or_map()?,
            Token::Symbol("(") => {
                // A cast `(type) value` or a tuple `(a, b)`.
                if let Some(Token::Word(w)) = self.peek_token() {
                    if CqlType::parse(w).is_ok_and(|t| !matches!(t, CqlType::UserTypeName(_)))
                        && matches!(
                            self.tokens.get(self.at + 1).map(|t| &t.token),
                            Some(Token::Symbol(")"))
                        )
                    {
                        let ty = self.cql_type()?;
                        self.expect_symbol(")")?;
                        return Ok(Term::Cast(ty, Box::new(self.term()?)));
                    }
                }
                let mut items = vec![self.term()?];
                while self.eat_symbol(",") {
                    items.push(self.term()?);
                }
                self.expect_symbol(")")?;
                Term::Tuple(items)
            }
            Token::Word(ref w) => {
                let lower = w.to_ascii_lowercase();
                match lower.as_str() {
                    "true" => Term::Literal(Literal::Bool(true)),
                    "false" => Term::Literal(Literal::Bool(false)),
                    "null" => Term::Literal(Literal::Null),
                    "nan" => Term::Literal(Literal::Float("NaN".into())),
                    "infinity" => Term::Literal(Literal::Float("Infinity".into())),
                    _ if crate::values::parse_duration(w).is_some() => {
                        Term::Literal(Literal::Duration(w.clone()))
                    }
                    _ if self.is_symbol("(") => {
                        self.at += 1;
                        let mut args = Vec::new();
                        if !self.eat_symbol(")") {
                            args.push(self.term()?);
                            while self.eat_symbol(",") {
                                args.push(self.term()?);
                            }
                            self.expect_symbol(")")?;
                        }
                        Term::Function { name: lower, args }
                    }
                    _ => return Err(self.error_at(&spanned, "a value")),
                }
            }
            _ => return Err(self.error_at(&spanned, "a value")),
        })
    }

    /// The number after a unary `-` (one token: a `-` never nests, so a
    /// run of them cannot recurse).
    fn negated_number(&mut self, minus: &Spanned) -> Result<Term> {
        let Some(next) = self.peek().cloned() else {
            return Err(self.error_at(minus, "a number after '-'"));
        };
        let term = match next.token {
            Token::Integer(n) => Term::Literal(Literal::Integer(format!("-{n}"))),
            Token::Float(f) => Term::Literal(Literal::Float(format!("-{f}"))),
            Token::Word(w) if w.eq_ignore_ascii_case("infinity") => {
                Term::Literal(Literal::Float("-Infinity".into()))
            }
            Token::Word(w) if w.eq_ignore_ascii_case("nan") => {
                Term::Literal(Literal::Float("-NaN".into()))
            }
            Token::Word(w) if crate::values::parse_duration(&w).is_some() => {
                Term::Literal(Literal::Duration(format!("-{w}")))
            }
            _ => return Err(self.error_at(minus, "a number after '-'")),
        };
        self.at += 1;
        Ok(term)
    }

    /// A field name of a user-defined type literal (`{street: 'x'}`).
    fn field_key(&mut self) -> Result<Term> {
        let is_field = matches!(
            self.peek_token(),
            Some(Token::Word(w)) if !["true", "false", "null", "nan", "infinity"].iter().any(|k| w.eq_ignore_ascii_case(k))
        ) || matches!(self.peek_token(), Some(Token::Quoted(_)));
        if is_field
            && matches!(
                self.tokens.get(self.at + 1).map(|t| &t.token),
                Some(Token::Symbol(":"))
            )
        {
            return Ok(Term::Literal(Literal::Str(self.identifier()?)));
        }
        self.term()
    }

    fn set_or_map(&mut self) -> Result<Term> {
        if self.eat_symbol("}") {
            return Ok(Term::Map(Vec::new()));
        }
        let first = self.field_key()?;
        if self.eat_symbol(":") {
            let mut entries = vec![(first, self.term()?)];
            while self.eat_symbol(",") {
                let key = self.field_key()?;
                self.expect_symbol(":")?;
                entries.push((key, self.term()?));
            }
            self.expect_symbol("}")?;
            return Ok(Term::Map(entries));
        }
        let mut items = vec![first];
        while self.eat_symbol(",") {
            items.push(self.term()?);
        }
        self.expect_symbol("}")?;
        Ok(Term::Set(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests fail with the error instead of panicking on it.
    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn create_table_with_compound_key_and_order() -> TestResult {
        let statement = parse(
            "CREATE TABLE IF NOT EXISTS ks.events (\n  tenant text, day date, at timestamp, id uuid,\n  tags set<text>, meta frozen<map<text, int>>, note text STATIC,\n  PRIMARY KEY ((tenant, day), at, id)\n) WITH CLUSTERING ORDER BY (at DESC, id ASC) AND gc_grace_seconds = 3600\n  AND compaction = {'class': 'LeveledCompactionStrategy', 'sstable_size_in_mb': 160};",
        )
        ?;
        let Statement::CreateTable {
            name,
            if_not_exists,
            columns,
            partition_key,
            clustering,
            clustering_order,
            options,
        } = statement
        else {
            return Err("unexpected statement".into());
        };
        assert_eq!(name.keyspace.as_deref(), Some("ks"));
        assert!(if_not_exists);
        assert_eq!(partition_key, vec!["tenant", "day"]);
        assert_eq!(clustering, vec!["at", "id"]);
        assert_eq!(
            clustering_order,
            vec![("at".to_string(), true), ("id".to_string(), false)]
        );
        assert_eq!(columns.len(), 7);
        assert!(columns[6].is_static);
        assert_eq!(columns[5].ty.to_string(), "frozen<map<text, int>>");
        assert_eq!(options.len(), 2);
        Ok(())
    }

    #[test]
    fn dml_statements() -> TestResult {
        let statement = parse(
            "INSERT INTO t (k, v, l) VALUES (?, 'x', [1, 2]) USING TTL 60 AND TIMESTAMP 123",
        )?;
        assert!(
            matches!(statement, Statement::Insert { ref using, .. } if using.ttl.is_some() && using.timestamp.is_some())
        );
        let statement = parse("SELECT k, count(*) AS n, writetime(v) FROM ks.t WHERE k IN (1, 2) AND c >= -5 AND (c, d) > (1, 2) AND token(k) > 0 ORDER BY c DESC PER PARTITION LIMIT 2 LIMIT 10 ALLOW FILTERING")?;
        let Statement::Select {
            selectors,
            relations,
            order_by,
            limit,
            allow_filtering,
            ..
        } = statement
        else {
            return Err("unexpected statement".into());
        };
        assert_eq!(selectors.len(), 3);
        assert_eq!(relations.len(), 4);
        assert_eq!(order_by, vec![("c".into(), true)]);
        assert!(limit.is_some() && allow_filtering);
        assert!(matches!(
            parse("DELETE v FROM t USING TIMESTAMP 5 WHERE k = :key")?,
            Statement::Delete { .. }
        ));
        assert!(matches!(
            parse("UPDATE t SET m = {'a': 1}, s = {1, 2} WHERE k = 1")?,
            Statement::Update { .. }
        ));
        assert!(matches!(parse("BEGIN UNLOGGED BATCH INSERT INTO t (k) VALUES (1); DELETE FROM t WHERE k = 2; APPLY BATCH")?, Statement::Batch { logged: false, .. }));
        Ok(())
    }

    #[test]
    fn errors_say_where_and_what() -> TestResult {
        let err = parse("SELECT * FORM t").unwrap_err();
        assert_eq!((err.line, err.column), (1, 10));
        assert!(
            err.message.contains("FORM") && err.message.contains("FROM"),
            "{err}"
        );
        let err = parse("CREATE TABLE t (k int PRIMARY KEY, v list<>)").unwrap_err();
        assert!(err.message.contains("expected a type"), "{err}");
        let err = parse("INSERT INTO t (k) VALUES (1").unwrap_err();
        assert!(err.message.contains("end of statement"), "{err}");
        assert!(matches!(
            parse("CREATE INDEX ON t (v)")?,
            Statement::NotYetSupported(_)
        ));
        Ok(())
    }
}
