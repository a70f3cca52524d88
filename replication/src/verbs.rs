//! The binary payloads of the replication verbs that are not already
//! storage values: slice queries, token ranges, scan resume points and scan
//! pages, in the storage codec's primitives. Decoding never panics; a bad
//! payload is a [`DecodeError`].

use std::ops::Bound;

use bytes::Bytes;
use storage_lsm::codec::{DecodeError, Reader, Writer};
use storage_lsm::model::{ClusteringBound, ClusteringRange, PartitionKey, TableId};
use storage_lsm::{PartitionRows, ScanPage, ScanResume, SliceQuery, TokenRange};

fn write_opt_bytes(w: &mut Writer, value: Option<&Bytes>) {
    match value {
        None => w.u8(0),
        Some(bytes) => {
            w.u8(1);
            w.bytes(bytes);
        }
    }
}

fn read_opt_bytes(r: &mut Reader<'_>) -> Result<Option<Bytes>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        _ => Some(r.bytes()?),
    })
}

fn write_clustering_bound(w: &mut Writer, bound: &ClusteringBound) {
    match bound {
        ClusteringBound::Unbounded => w.u8(0),
        ClusteringBound::Inclusive(p) => {
            w.u8(1);
            w.bytes(p);
        }
        ClusteringBound::Exclusive(p) => {
            w.u8(2);
            w.bytes(p);
        }
    }
}

fn read_clustering_bound(r: &mut Reader<'_>) -> Result<ClusteringBound, DecodeError> {
    Ok(match r.u8()? {
        0 => ClusteringBound::Unbounded,
        1 => ClusteringBound::Inclusive(r.bytes()?),
        _ => ClusteringBound::Exclusive(r.bytes()?),
    })
}

pub fn encode_query(query: &SliceQuery) -> Vec<u8> {
    let mut w = Writer::new();
    write_clustering_bound(&mut w, &query.range.start);
    write_clustering_bound(&mut w, &query.range.end);
    w.u8(u8::from(query.reversed));
    w.varint(u64::try_from(query.limit).unwrap_or(u64::MAX));
    write_opt_bytes(&mut w, query.resume_after.as_ref());
    w.buf
}

pub fn decode_query(bytes: &[u8]) -> Result<SliceQuery, DecodeError> {
    let mut r = Reader::new(bytes);
    let start = read_clustering_bound(&mut r)?;
    let end = read_clustering_bound(&mut r)?;
    Ok(SliceQuery {
        range: ClusteringRange { start, end },
        reversed: r.u8()? != 0,
        limit: usize::try_from(r.varint()?).unwrap_or(usize::MAX),
        resume_after: read_opt_bytes(&mut r)?,
    })
}

fn write_token_bound(w: &mut Writer, bound: &Bound<i64>) {
    match bound {
        Bound::Unbounded => w.u8(0),
        Bound::Included(t) => {
            w.u8(1);
            w.fixed_i64(*t);
        }
        Bound::Excluded(t) => {
            w.u8(2);
            w.fixed_i64(*t);
        }
    }
}

fn read_token_bound(r: &mut Reader<'_>) -> Result<Bound<i64>, DecodeError> {
    Ok(match r.u8()? {
        0 => Bound::Unbounded,
        1 => Bound::Included(r.fixed_i64()?),
        _ => Bound::Excluded(r.fixed_i64()?),
    })
}

pub fn encode_range(range: &TokenRange) -> Vec<u8> {
    let mut w = Writer::new();
    write_token_bound(&mut w, &range.start);
    write_token_bound(&mut w, &range.end);
    w.buf
}

pub fn decode_range(bytes: &[u8]) -> Result<TokenRange, DecodeError> {
    let mut r = Reader::new(bytes);
    Ok(TokenRange {
        start: read_token_bound(&mut r)?,
        end: read_token_bound(&mut r)?,
    })
}

fn write_resume(w: &mut Writer, resume: &ScanResume) {
    w.partition_key(&resume.key);
    write_opt_bytes(w, resume.clustering.as_ref());
}

fn read_resume(r: &mut Reader<'_>) -> Result<ScanResume, DecodeError> {
    Ok(ScanResume {
        key: r.partition_key()?,
        clustering: read_opt_bytes(r)?,
    })
}

/// A resume point, or nothing (an empty payload).
pub fn encode_resume(resume: Option<&ScanResume>) -> Vec<u8> {
    let mut w = Writer::new();
    if let Some(resume) = resume {
        write_resume(&mut w, resume);
    }
    w.buf
}

pub fn decode_resume(bytes: &[u8]) -> Result<Option<ScanResume>, DecodeError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    read_resume(&mut Reader::new(bytes)).map(Some)
}

pub fn encode_page(page: &ScanPage) -> Vec<u8> {
    let mut w = Writer::new();
    w.varint(page.partitions.len() as u64);
    for partition in &page.partitions {
        w.partition_key(&partition.key);
        match &partition.static_row {
            None => w.u8(0),
            Some(row) => {
                w.u8(1);
                w.row(row);
            }
        }
        w.varint(partition.rows.len() as u64);
        for row in &partition.rows {
            w.row(row);
        }
    }
    match &page.resume {
        None => w.u8(0),
        Some(resume) => {
            w.u8(1);
            write_resume(&mut w, resume);
        }
    }
    w.buf
}

/// Most partitions or rows a decoded page may claim (a bad count must not
/// make the decoder reserve memory for it).
const PAGE_ITEMS_MAX: u64 = 1 << 24;

pub fn decode_page(bytes: &[u8]) -> Result<ScanPage, DecodeError> {
    let mut r = Reader::new(bytes);
    let count = r.varint()?.min(PAGE_ITEMS_MAX);
    let mut partitions = Vec::new();
    for _ in 0..count {
        let key = r.partition_key()?;
        let static_row = match r.u8()? {
            0 => None,
            _ => Some(r.row()?),
        };
        let rows_count = r.varint()?.min(PAGE_ITEMS_MAX);
        let mut rows = Vec::new();
        for _ in 0..rows_count {
            rows.push(r.row()?);
        }
        partitions.push(PartitionRows {
            key,
            static_row,
            rows,
        });
    }
    let resume = match r.u8()? {
        0 => None,
        _ => Some(read_resume(&mut r)?),
    };
    Ok(ScanPage { partitions, resume })
}

pub fn encode_key(key: &PartitionKey) -> Vec<u8> {
    let mut w = Writer::new();
    w.partition_key(key);
    w.buf
}

pub fn decode_key(bytes: &[u8]) -> Result<PartitionKey, DecodeError> {
    Reader::new(bytes).partition_key()
}

pub fn encode_table(table: TableId) -> Vec<u8> {
    table.0.to_be_bytes().to_vec()
}

pub fn decode_table(bytes: &[u8]) -> Option<TableId> {
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|b| TableId(u128::from_be_bytes(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_lsm::model::{Cell, Row};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn payloads_round_trip() -> TestResult {
        let query = SliceQuery {
            range: ClusteringRange {
                start: ClusteringBound::Inclusive(Bytes::from_static(b"a")),
                end: ClusteringBound::Exclusive(Bytes::from_static(b"z")),
            },
            reversed: true,
            limit: 10,
            resume_after: Some(Bytes::from_static(b"m")),
        };
        assert_eq!(decode_query(&encode_query(&query))?, query);
        let all = SliceQuery::all();
        assert_eq!(decode_query(&encode_query(&all))?, all);
        let range = TokenRange {
            start: Bound::Excluded(-5),
            end: Bound::Included(i64::MAX),
        };
        assert_eq!(decode_range(&encode_range(&range))?, range);
        let key = PartitionKey::new(42, &b"k"[..]);
        let resume = ScanResume {
            key: key.clone(),
            clustering: Some(Bytes::from_static(b"c")),
        };
        assert_eq!(
            decode_resume(&encode_resume(Some(&resume)))?,
            Some(resume.clone())
        );
        assert_eq!(decode_resume(&encode_resume(None))?, None);
        let page = ScanPage {
            partitions: vec![PartitionRows {
                key: key.clone(),
                static_row: Some(Row::new(Bytes::new(), vec![Cell::live(0, 1, &b"s"[..])])),
                rows: vec![Row::new(&b"c"[..], vec![Cell::live(1, 2, &b"v"[..])])],
            }],
            resume: Some(resume),
        };
        assert_eq!(decode_page(&encode_page(&page))?, page);
        assert_eq!(decode_key(&encode_key(&key))?, key);
        assert_eq!(decode_table(&encode_table(TableId(7))), Some(TableId(7)));
        assert!(decode_page(&[5]).is_err(), "a truncated page is an error");
        Ok(())
    }
}
