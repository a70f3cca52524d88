//! Consistency levels and how many replica answers each one needs.
//!
//! Plain arithmetic, no I/O: given a replication factor and the live
//! replicas, how many must acknowledge, and whether the request can be
//! attempted at all (else it is Unavailable, before anything is sent).

use std::fmt;

/// A CQL consistency level (protocol codes of section 3 of the v4 spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsistencyLevel {
    Any,
    One,
    Two,
    Three,
    Quorum,
    All,
    LocalQuorum,
    EachQuorum,
    Serial,
    LocalSerial,
    LocalOne,
}

impl ConsistencyLevel {
    pub fn from_code(code: u16) -> Option<ConsistencyLevel> {
        use ConsistencyLevel::*;
        Some(match code {
            0x0000 => Any,
            0x0001 => One,
            0x0002 => Two,
            0x0003 => Three,
            0x0004 => Quorum,
            0x0005 => All,
            0x0006 => LocalQuorum,
            0x0007 => EachQuorum,
            0x0008 => Serial,
            0x0009 => LocalSerial,
            0x000A => LocalOne,
            _ => return None,
        })
    }

    pub fn code(self) -> u16 {
        use ConsistencyLevel::*;
        match self {
            Any => 0x0000,
            One => 0x0001,
            Two => 0x0002,
            Three => 0x0003,
            Quorum => 0x0004,
            All => 0x0005,
            LocalQuorum => 0x0006,
            EachQuorum => 0x0007,
            Serial => 0x0008,
            LocalSerial => 0x0009,
            LocalOne => 0x000A,
        }
    }

    /// Replica acknowledgements needed with `replication_factor` replicas
    /// (one data center). `Any` needs one acknowledgement, which a hint can give.
    pub fn block_for(self, replication_factor: usize) -> usize {
        use ConsistencyLevel::*;
        match self {
            Any | One | LocalOne => 1,
            Two => 2,
            Three => 3,
            Quorum | LocalQuorum | EachQuorum | Serial | LocalSerial => replication_factor / 2 + 1,
            All => replication_factor,
        }
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConsistencyLevel::*;
        let name = match self {
            Any => "ANY",
            One => "ONE",
            Two => "TWO",
            Three => "THREE",
            Quorum => "QUORUM",
            All => "ALL",
            LocalQuorum => "LOCAL_QUORUM",
            EachQuorum => "EACH_QUORUM",
            Serial => "SERIAL",
            LocalSerial => "LOCAL_SERIAL",
            LocalOne => "LOCAL_ONE",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_arithmetic() {
        assert_eq!(ConsistencyLevel::Quorum.block_for(3), 2);
        assert_eq!(ConsistencyLevel::Quorum.block_for(1), 1);
        assert_eq!(ConsistencyLevel::Quorum.block_for(4), 3);
        assert_eq!(ConsistencyLevel::All.block_for(3), 3);
        assert_eq!(ConsistencyLevel::Two.block_for(1), 2);
        for code in 0..=0x0A {
            assert_eq!(
                ConsistencyLevel::from_code(code).map(|c| c.code()),
                Some(code)
            );
        }
        assert!(ConsistencyLevel::from_code(0x0B).is_none());
    }
}
