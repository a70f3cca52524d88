//! The error codes drivers act on (section 9 of the v4 spec), and how an
//! ERROR body is written. Every error carries a message saying what to fix.

use crate::protocol::primitives::BodyWriter;

/// A CQL error to send to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CqlError {
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    BadCredentials(String),
    #[error("{message}")]
    Unavailable {
        message: String,
        consistency: u16,
        required: i32,
        alive: i32,
    },
    #[error("{0}")]
    Overloaded(String),
    #[error("{message}")]
    WriteTimeout {
        message: String,
        consistency: u16,
        received: i32,
        block_for: i32,
        write_type: &'static str,
    },
    #[error("{message}")]
    ReadTimeout {
        message: String,
        consistency: u16,
        received: i32,
        block_for: i32,
        data_present: bool,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{message}")]
    AlreadyExists {
        message: String,
        keyspace: String,
        table: String,
    },
    #[error("{message}")]
    Unprepared { message: String, id: Vec<u8> },
    #[error("{0}")]
    Truncate(String),
}

impl CqlError {
    /// A feature that is not built yet: Invalid, with a message that says so.
    pub fn not_yet_supported(what: &str) -> CqlError {
        CqlError::Invalid(format!("not yet supported: {what}"))
    }

    pub fn code(&self) -> i32 {
        match self {
            CqlError::Server(_) => 0x0000,
            CqlError::Protocol(_) => 0x000A,
            CqlError::BadCredentials(_) => 0x0100,
            CqlError::Unavailable { .. } => 0x1000,
            CqlError::Overloaded(_) => 0x1001,
            CqlError::Truncate(_) => 0x1003,
            CqlError::WriteTimeout { .. } => 0x1100,
            CqlError::ReadTimeout { .. } => 0x1200,
            CqlError::Syntax(_) => 0x2000,
            CqlError::Unauthorized(_) => 0x2100,
            CqlError::Invalid(_) => 0x2200,
            CqlError::AlreadyExists { .. } => 0x2400,
            CqlError::Unprepared { .. } => 0x2500,
        }
    }

    /// The ERROR message body: `[int] code, [string] message, extras`.
    pub fn encode(&self, w: &mut BodyWriter) {
        w.write_int(self.code());
        w.write_string(&self.to_string());
        match self {
            CqlError::Unavailable {
                consistency,
                required,
                alive,
                ..
            } => {
                w.write_short(*consistency);
                w.write_int(*required);
                w.write_int(*alive);
            }
            CqlError::WriteTimeout {
                consistency,
                received,
                block_for,
                write_type,
                ..
            } => {
                w.write_short(*consistency);
                w.write_int(*received);
                w.write_int(*block_for);
                w.write_string(write_type);
            }
            CqlError::ReadTimeout {
                consistency,
                received,
                block_for,
                data_present,
                ..
            } => {
                w.write_short(*consistency);
                w.write_int(*received);
                w.write_int(*block_for);
                w.write_byte(u8::from(*data_present));
            }
            CqlError::AlreadyExists {
                keyspace, table, ..
            } => {
                w.write_string(keyspace);
                w.write_string(table);
            }
            CqlError::Unprepared { id, .. } => w.write_short_bytes(id),
            _ => {}
        }
    }
}
