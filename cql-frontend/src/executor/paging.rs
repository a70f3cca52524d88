//! The paging state a client sends back for the next page, and what is
//! left of a LIMIT.

use bytes::{BufMut, Bytes, BytesMut};

use storage_lsm::model::PartitionKey;

use crate::protocol::error::CqlError;

/// What a paging state says is left of a LIMIT after `taken` rows;
/// `None` when there was no LIMIT (`remaining` is `usize::MAX`).
pub(super) fn rows_left(remaining: usize, taken: usize) -> Option<usize> {
    (remaining != usize::MAX).then(|| remaining.saturating_sub(taken))
}

/// Where the next page starts: independent of the connection, so a driver
/// may fetch it on any connection (gocql does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PagingState {
    pub(super) key: PartitionKey,
    pub(super) clustering: Option<Bytes>,
    pub(super) remaining: Option<usize>,
}

impl PagingState {
    const VERSION: u8 = 1;

    pub(super) fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(Self::VERSION);
        out.put_i64(self.key.token);
        out.put_u32(self.key.key.len() as u32);
        out.put_slice(&self.key.key);
        match &self.clustering {
            Some(c) => {
                out.put_u8(1);
                out.put_u32(c.len() as u32);
                out.put_slice(c);
            }
            None => out.put_u8(0),
        }
        out.put_i64(self.remaining.map_or(-1, |r| r as i64));
        out.freeze()
    }

    pub(super) fn decode(bytes: Option<&Bytes>) -> Result<Option<PagingState>, CqlError> {
        let Some(bytes) = bytes else { return Ok(None) };
        let bad = || {
            CqlError::Protocol(
                "invalid paging state (was it made by another Ilion version?)".into(),
            )
        };
        let mut r = crate::protocol::primitives::BodyReader::new(bytes.clone());
        if r.read_byte().map_err(|_| bad())? != Self::VERSION {
            return Err(bad());
        }
        let token = r.read_long().map_err(|_| bad())?;
        let key = r.read_bytes().map_err(|_| bad())?.ok_or_else(bad)?;
        let clustering = match r.read_byte().map_err(|_| bad())? {
            0 => None,
            _ => Some(r.read_bytes().map_err(|_| bad())?.ok_or_else(bad)?),
        };
        let remaining = r.read_long().map_err(|_| bad())?;
        Ok(Some(PagingState {
            key: PartitionKey::new(token, key),
            clustering,
            remaining: usize::try_from(remaining).ok(),
        }))
    }
}
