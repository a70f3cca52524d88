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

#[cfg(test)]
mod tests {
    use super::super::harness::{TestNode, TestResult};
    use super::PagingState;
    use crate::protocol::error::CqlError;
    use bytes::Bytes;

    #[test]
    fn a_paging_state_survives_its_round_trip() -> TestResult {
        let state = PagingState {
            key: storage_lsm::model::PartitionKey::new(
                -42,
                Bytes::from_static(b"\x00\x00\x00\x07"),
            ),
            clustering: Some(Bytes::from_static(b"\x01\x02")),
            remaining: Some(3),
        };
        let encoded = state.encode();
        assert_eq!(PagingState::decode(Some(&encoded))?, Some(state));
        assert_eq!(PagingState::decode(None)?, None);
        Ok(())
    }

    #[test]
    fn a_damaged_paging_state_is_refused_not_guessed() -> TestResult {
        let mut node = TestNode::new()?;
        node.run("CREATE TABLE t (p int, c int, PRIMARY KEY (p, c))")?;
        for c in 0..5 {
            node.run(&format!("INSERT INTO t (p, c) VALUES (1, {c})"))?;
        }
        let page = node.page("SELECT c FROM t", 2, None)?;
        let state = page.paging_state.ok_or("a second page")?;
        for cut in [0, 1, state.len() / 2, state.len() - 1] {
            let damaged = state.slice(..cut);
            let result = node.page("SELECT c FROM t", 2, Some(damaged));
            let refused = result
                .as_ref()
                .err()
                .and_then(|e| e.downcast_ref::<CqlError>())
                .is_some_and(|e| matches!(e, CqlError::Protocol(_) | CqlError::Invalid(_)));
            assert!(refused, "a paging state cut to {cut} bytes: {result:?}");
        }
        Ok(())
    }
}
