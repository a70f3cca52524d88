//! The statements the parser produces. Names are already case-folded
//! (unquoted identifiers to lower case, quoted ones kept).

use crate::types::CqlType;

/// `keyspace.table`, the keyspace optional until resolved against `USE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub keyspace: Option<String>,
    pub name: String,
}

/// A literal value as written (typed later, against the column it meets).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Integer(String),
    Float(String),
    Bool(bool),
    Uuid(String),
    Blob(Vec<u8>),
    /// `1h30m`, `-2d`, `P1DT2H` (a duration literal, checked by the parser).
    Duration(String),
    Null,
}

/// A value in a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Literal(Literal),
    /// `?` (numbered in order of appearance) or `:name`.
    Bind(BindMarker),
    List(Vec<Term>),
    Set(Vec<Term>),
    Map(Vec<(Term, Term)>),
    Tuple(Vec<Term>),
    /// A function call such as `now()` or `uuid()`.
    Function {
        name: String,
        args: Vec<Term>,
    },
    /// `(type) term`
    Cast(CqlType, Box<Term>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindMarker {
    Positional(usize),
    /// `:name`, and its position among all markers of the statement.
    Named(String, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
    In,
    Contains,
    ContainsKey,
}

/// One `WHERE` restriction.
#[derive(Debug, Clone, PartialEq)]
pub enum Relation {
    Column {
        column: String,
        op: Operator,
        value: Term,
    },
    /// `(c1, c2) > (v1, v2)`
    MultiColumn {
        columns: Vec<String>,
        op: Operator,
        value: Term,
    },
    /// `token(k1, k2) > value`
    Token {
        columns: Vec<String>,
        op: Operator,
        value: Term,
    },
}

/// One `SET` clause of an `UPDATE`.
#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// `c = value`
    Set(Term),
    /// `c = c + value` (collection append/add, or counter increment)
    Add(Term),
    /// `c = value + c` (list prepend)
    Prepend(Term),
    /// `c = c - value` (collection removal, or counter decrement)
    Remove(Term),
    /// `c[key] = value`
    SetElement(Term, Term),
    /// `c.field = value` (a non-frozen user-defined type's field)
    SetField(String, Term),
}

/// What a `DELETE` removes of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The whole column.
    Column,
    /// One element of a collection: `m['k']`, `l[1]`, `s['x']`.
    Element(Term),
    /// One field of a non-frozen user-defined type: `addr.zip`.
    Field(String),
}

/// A column definition in `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: CqlType,
    pub is_static: bool,
}

/// What an `ALTER TABLE` changes.
#[derive(Debug, Clone, PartialEq)]
pub enum AlterTable {
    /// `ADD [IF NOT EXISTS] c type [static]` or `ADD (c type, ...)`
    Add {
        if_not_exists: bool,
        columns: Vec<ColumnDef>,
    },
    /// `DROP [IF EXISTS] c` or `DROP (c, ...)`
    Drop {
        if_exists: bool,
        columns: Vec<String>,
    },
    /// `RENAME [IF EXISTS] a TO b AND c TO d`
    Rename {
        if_exists: bool,
        pairs: Vec<(String, String)>,
    },
    /// `WITH option = value AND ...`
    With(Vec<(String, OptionValue)>),
}

/// What an `ALTER TYPE` changes.
#[derive(Debug, Clone, PartialEq)]
pub enum AlterType {
    /// `ADD [IF NOT EXISTS] field type`
    Add {
        if_not_exists: bool,
        field: String,
        ty: CqlType,
    },
    /// `RENAME [IF EXISTS] a TO b AND c TO d`
    Rename {
        if_exists: bool,
        pairs: Vec<(String, String)>,
    },
}

/// `USING TTL ... AND TIMESTAMP ...`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Using {
    pub ttl: Option<Term>,
    pub timestamp: Option<Term>,
}

/// An option value in `WITH`.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Literal(Literal),
    Map(Vec<(String, String)>),
}

/// One selected expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Column(String),
    Function {
        name: String,
        args: Vec<Selector>,
    },
    /// `count(*)`
    CountAll,
    /// `CAST(selector AS type)`
    Cast(Box<Selector>, CqlType),
    /// `selector.field` of a user-defined type's value.
    Field(Box<Selector>, String),
    Aliased(Box<Selector>, String),
    /// A constant, as a function's argument (`abs(-2)`, `exp((float) 1)`).
    Term(Term),
}

/// A parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Use(String),
    CreateKeyspace {
        name: String,
        if_not_exists: bool,
        options: Vec<(String, OptionValue)>,
    },
    AlterKeyspace {
        name: String,
        options: Vec<(String, OptionValue)>,
    },
    DropKeyspace {
        name: String,
        if_exists: bool,
    },
    CreateTable {
        name: QualifiedName,
        if_not_exists: bool,
        columns: Vec<ColumnDef>,
        partition_key: Vec<String>,
        clustering: Vec<String>,
        clustering_order: Vec<(String, bool)>,
        options: Vec<(String, OptionValue)>,
    },
    DropTable {
        name: QualifiedName,
        if_exists: bool,
    },
    Truncate(QualifiedName),
    Insert {
        table: QualifiedName,
        columns: Vec<String>,
        values: Vec<Term>,
        /// `INSERT ... JSON 'value' [DEFAULT UNSET]`: the JSON text (a
        /// literal or a bind marker) and whether absent columns stay unset.
        json: Option<(Term, bool)>,
        if_not_exists: bool,
        using: Using,
    },
    Update {
        table: QualifiedName,
        using: Using,
        assignments: Vec<(String, Assignment)>,
        relations: Vec<Relation>,
        has_conditions: bool,
    },
    Delete {
        table: QualifiedName,
        /// Columns to delete, or parts of them.
        columns: Vec<(String, Deleted)>,
        using: Using,
        relations: Vec<Relation>,
        has_conditions: bool,
    },
    Select {
        table: QualifiedName,
        json: bool,
        distinct: bool,
        selectors: Vec<Selector>,
        relations: Vec<Relation>,
        /// `GROUP BY` columns (a prefix of the primary key).
        group_by: Vec<String>,
        order_by: Vec<(String, bool)>,
        per_partition_limit: Option<Term>,
        limit: Option<Term>,
        allow_filtering: bool,
    },
    Batch {
        logged: bool,
        using: Using,
        statements: Vec<Statement>,
    },
    /// Server-side `DESCRIBE` (what cqlsh sends since Cassandra 4).
    Describe(DescribeTarget),
    /// `ALTER TABLE`
    AlterTable {
        name: QualifiedName,
        if_exists: bool,
        change: AlterTable,
    },
    /// `ALTER TYPE`
    AlterType {
        name: QualifiedName,
        if_exists: bool,
        change: AlterType,
    },
    /// `CREATE TYPE`
    CreateType {
        name: QualifiedName,
        if_not_exists: bool,
        fields: Vec<(String, CqlType)>,
    },
    /// `DROP TYPE`
    DropType {
        name: QualifiedName,
        if_exists: bool,
    },
    /// `CREATE ROLE` / `CREATE USER`.
    CreateRole {
        name: String,
        if_not_exists: bool,
        options: RoleOptions,
    },
    /// `ALTER ROLE` / `ALTER USER`.
    AlterRole {
        name: String,
        options: RoleOptions,
    },
    /// `DROP ROLE` / `DROP USER`.
    DropRole {
        name: String,
        if_exists: bool,
    },
    /// `LIST ROLES [OF name]` / `LIST USERS`.
    ListRoles {
        of: Option<String>,
        users: bool,
    },
    /// Statements understood but not built yet (`CREATE INDEX`, roles, ...):
    /// the name of the feature.
    NotYetSupported(String),
}

/// The options of `CREATE ROLE` / `ALTER ROLE`; `None` leaves a setting as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleOptions {
    pub password: Option<String>,
    pub login: Option<bool>,
    pub superuser: Option<bool>,
}

/// What a `DESCRIBE` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescribeTarget {
    Keyspaces,
    Keyspace(Option<String>),
    Tables,
    Table(QualifiedName),
    Schema,
    Cluster,
    /// FUNCTIONS, AGGREGATES: lists of kinds of object we have none of.
    EmptyList,
    Types,
    Type(QualifiedName),
    /// `DESCRIBE name`: a keyspace, or else a table of the current keyspace.
    Name(QualifiedName),
}
