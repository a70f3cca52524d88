//! nodetool's output shapes: the admin API's replies as the text Cassandra's
//! nodetool prints, so runbooks and scripts that read it keep working.

use std::fmt::Write as _;

use crate::text::columns;

use crate::admin::proto::{
    ClusterReply, CompactionStatsReply, Endpoint, GossipInfoReply, InfoReply, ListSnapshotsReply,
    Percentiles, ProxyHistogramsReply, TableStats,
};

/// Bytes as nodetool shows them: `512 bytes`, `70.35 KiB`, `1.2 GiB`.
pub fn file_size(bytes: u64) -> String {
    const UNITS: [(&str, f64); 4] = [
        ("TiB", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("GiB", 1024.0 * 1024.0 * 1024.0),
        ("MiB", 1024.0 * 1024.0),
        ("KiB", 1024.0),
    ];
    let value = bytes as f64;
    UNITS.iter().find(|(_, size)| value >= *size).map_or_else(
        || format!("{bytes} bytes"),
        |(unit, size)| format!("{:.2} {unit}", value / size),
    )
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

fn status_code(endpoint: &Endpoint) -> String {
    let up = if endpoint.up { 'U' } else { 'D' };
    let state = endpoint.state.chars().next().unwrap_or('N');
    format!("{up}{state}")
}

/// Endpoints grouped by data center, in name order.
fn by_data_center(reply: &ClusterReply) -> Vec<(&str, Vec<&Endpoint>)> {
    let mut groups: Vec<(&str, Vec<&Endpoint>)> = Vec::new();
    for endpoint in &reply.endpoints {
        match groups
            .iter_mut()
            .find(|(dc, _)| *dc == endpoint.data_center)
        {
            Some((_, list)) => list.push(endpoint),
            None => groups.push((&endpoint.data_center, vec![endpoint])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(b.0));
    groups
}

/// `nodetool status`.
pub fn status(reply: &ClusterReply, effective: bool) -> String {
    let mut out = String::new();
    for (dc, endpoints) in by_data_center(reply) {
        let title = format!("Datacenter: {dc}");
        let _ = writeln!(out, "{title}\n{}", "=".repeat(title.len()));
        out.push_str("Status=Up/Down\n|/ State=Normal/Leaving/Joining/Moving\n");
        let owns = if effective {
            "Owns (effective)"
        } else {
            "Owns"
        };
        let mut rows = vec![["--", "Address", "Load", "Tokens", owns, "Host ID", "Rack"]
            .map(str::to_owned)
            .to_vec()];
        let mut sorted = endpoints;
        sorted.sort_by(|a, b| a.address.cmp(&b.address));
        for e in sorted {
            rows.push(vec![
                status_code(e),
                e.address.clone(),
                file_size(e.load_bytes),
                e.tokens.len().to_string(),
                percent(e.ownership),
                e.host_id.clone(),
                e.rack.clone(),
            ]);
        }
        out.push_str(&columns(&rows));
        out.push('\n');
    }
    out
}

/// `nodetool ring`.
pub fn ring(reply: &ClusterReply) -> String {
    let mut out = String::new();
    for (dc, endpoints) in by_data_center(reply) {
        let title = format!("Datacenter: {dc}");
        let _ = writeln!(out, "{title}\n{}", "=".repeat(10));
        let mut tokens: Vec<(i64, &Endpoint)> = endpoints
            .iter()
            .flat_map(|e| e.tokens.iter().map(move |t| (*t, *e)))
            .collect();
        tokens.sort_by_key(|(t, _)| *t);
        let mut rows = vec![[
            "Address", "Rack", "Status", "State", "Load", "Owns", "Token",
        ]
        .map(str::to_owned)
        .to_vec()];
        if let Some((last, _)) = tokens.last() {
            let mut blank = vec![String::new(); 6];
            blank.push(last.to_string());
            rows.push(blank);
        }
        for (token, e) in tokens {
            rows.push(vec![
                e.address.clone(),
                e.rack.clone(),
                if e.up { "Up" } else { "Down" }.to_owned(),
                title_case(&e.state),
                file_size(e.load_bytes),
                percent(e.ownership),
                token.to_string(),
            ]);
        }
        out.push_str(&columns(&rows));
        out.push('\n');
    }
    out
}

fn title_case(word: &str) -> String {
    let lower = word.to_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `nodetool describecluster`.
pub fn describe_cluster(reply: &ClusterReply) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Cluster Information:");
    let _ = writeln!(out, "\tName: {}", reply.cluster_name);
    let _ = writeln!(out, "\tSnitch: {}", reply.snitch);
    let _ = writeln!(out, "\tDynamicEndPointSnitch: disabled");
    let _ = writeln!(out, "\tPartitioner: {}", reply.partitioner);
    let _ = writeln!(out, "\tSchema versions:");
    let mut versions: Vec<(&str, Vec<&str>)> = Vec::new();
    for e in reply.endpoints.iter().filter(|e| e.up) {
        match versions.iter_mut().find(|(v, _)| *v == e.schema_version) {
            Some((_, list)) => list.push(&e.address),
            None => versions.push((&e.schema_version, vec![&e.address])),
        }
    }
    for (version, addresses) in versions {
        let _ = writeln!(out, "\t\t{version}: [{}]", addresses.join(", "));
    }
    let count = |state: &str| {
        reply
            .endpoints
            .iter()
            .filter(|e| e.up && e.state == state)
            .count()
    };
    let _ = writeln!(out, "\nStats for all nodes:");
    let _ = writeln!(
        out,
        "\tLive: {}",
        reply.endpoints.iter().filter(|e| e.up).count()
    );
    let _ = writeln!(out, "\tJoining: {}", count("JOINING"));
    let _ = writeln!(out, "\tMoving: {}", count("MOVING"));
    let _ = writeln!(out, "\tLeaving: {}", count("LEAVING"));
    let _ = writeln!(
        out,
        "\tUnreachable: {}",
        reply.endpoints.iter().filter(|e| !e.up).count()
    );
    let _ = writeln!(out, "\nData Centers: ");
    for (dc, endpoints) in by_data_center(reply) {
        let down = endpoints.iter().filter(|e| !e.up).count();
        let _ = writeln!(out, "\t{dc} #Nodes: {} #Down: {down}", endpoints.len());
    }
    out
}

/// `nodetool info`.
pub fn info(reply: &InfoReply, all_tokens: bool) -> String {
    let mib = |bytes: u64| format!("{:.2}", bytes as f64 / (1024.0 * 1024.0));
    let mut lines: Vec<(&str, String)> = vec![
        ("ID", reply.host_id.clone()),
        ("Gossip active", reply.gossip_active.to_string()),
        (
            "Native Transport active",
            reply.native_transport_active.to_string(),
        ),
        ("Load", file_size(reply.load_bytes)),
        ("Generation No", reply.generation.to_string()),
        ("Uptime (seconds)", reply.uptime_seconds.to_string()),
        ("Resident Memory (MB)", mib(reply.resident_memory_bytes)),
        ("Memtable Memory (MB)", mib(reply.memtable_bytes)),
        ("Data Center", reply.data_center.clone()),
        ("Rack", reply.rack.clone()),
        ("Commitlog segments", reply.commitlog_segments.to_string()),
        ("Client connections", reply.client_connections.to_string()),
    ];
    if reply.draining {
        lines.push(("Mode", "DRAINED".to_owned()));
    }
    if all_tokens {
        lines.extend(reply.tokens.iter().map(|t| ("Token", t.to_string())));
    } else {
        lines.push((
            "Token",
            format!(
                "(invoke with -T/--tokens to see all {} tokens)",
                reply.tokens.len()
            ),
        ));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{k:<width$}: {v}\n"))
        .collect()
}

/// `nodetool gossipinfo`.
pub fn gossip_info(reply: &GossipInfoReply) -> String {
    let mut out = String::new();
    for endpoint in &reply.endpoints {
        let _ = writeln!(out, "/{}", endpoint.address);
        let _ = writeln!(out, "  generation:{}", endpoint.generation);
        let _ = writeln!(out, "  heartbeat:{}", endpoint.heartbeat);
        for state in &endpoint.states {
            let _ = writeln!(out, "  {}:{}:{}", state.name, state.version, state.value);
        }
    }
    out
}

/// Mean latency in milliseconds as tablestats prints it (NaN when empty).
fn mean_ms(p: Option<&Percentiles>) -> String {
    match p {
        Some(p) if p.count > 0 => format!("{:.3} ms", p.mean / 1000.0),
        _ => "NaN ms".to_owned(),
    }
}

fn count(p: Option<&Percentiles>) -> u64 {
    p.map_or(0, |p| p.count)
}

/// `nodetool tablestats`.
pub fn table_stats(tables: &[TableStats], human_readable: bool) -> String {
    let size = |bytes: u64| {
        if human_readable {
            file_size(bytes)
        } else {
            bytes.to_string()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "Total number of tables: {}", tables.len());
    let _ = writeln!(out, "----------------");
    let mut keyspaces: Vec<&str> = tables.iter().map(|t| t.keyspace.as_str()).collect();
    keyspaces.sort_unstable();
    keyspaces.dedup();
    for keyspace in keyspaces {
        let of_keyspace: Vec<&TableStats> =
            tables.iter().filter(|t| t.keyspace == keyspace).collect();
        let total = |pick: fn(&TableStats) -> Option<&Percentiles>| {
            let (count, sum) = of_keyspace
                .iter()
                .filter_map(|t| pick(t))
                .fold((0u64, 0.0), |(c, s), p| {
                    (c + p.count, s + p.mean * p.count as f64)
                });
            Percentiles {
                count,
                mean: if count == 0 { 0.0 } else { sum / count as f64 },
                ..Percentiles::default()
            }
        };
        let reads = total(|t| t.read_latency_us.as_ref());
        let writes = total(|t| t.write_latency_us.as_ref());
        let _ = writeln!(out, "Keyspace : {keyspace}");
        let _ = writeln!(out, "\tRead Count: {}", reads.count);
        let _ = writeln!(out, "\tRead Latency: {}", mean_ms(Some(&reads)));
        let _ = writeln!(out, "\tWrite Count: {}", writes.count);
        let _ = writeln!(out, "\tWrite Latency: {}", mean_ms(Some(&writes)));
        for t in of_keyspace {
            let _ = writeln!(out, "\t\tTable: {}", t.table);
            let _ = writeln!(out, "\t\tSSTable count: {}", t.sstable_count);
            if t.compaction_strategy.ends_with("LeveledCompactionStrategy") {
                let levels: Vec<String> = t.sstables_per_level.iter().map(u64::to_string).collect();
                let _ = writeln!(out, "\t\tSSTables in each level: [{}]", levels.join(", "));
            }
            let _ = writeln!(out, "\t\tSpace used (live): {}", size(t.live_disk_bytes));
            let _ = writeln!(out, "\t\tSpace used (total): {}", size(t.live_disk_bytes));
            let _ = writeln!(out, "\t\tMemtable data size: {}", size(t.memtable_bytes));
            for (kind, latency) in [
                ("read", &t.read_latency_us),
                ("write", &t.write_latency_us),
                ("range read", &t.range_latency_us),
            ] {
                let _ = writeln!(out, "\t\tLocal {kind} count: {}", count(latency.as_ref()));
                let _ = writeln!(
                    out,
                    "\t\tLocal {kind} latency: {}",
                    mean_ms(latency.as_ref())
                );
            }
            let _ = writeln!(out, "\t\tPending compactions: {}", t.pending_compactions);
            let _ = writeln!(
                out,
                "\t\tNumber of partitions (estimate): {}",
                t.partition_count_estimate
            );
            let tombstones = t.tombstones_per_read.unwrap_or_default();
            let _ = writeln!(
                out,
                "\t\tAverage tombstones per slice: {:.1}",
                tombstones.mean
            );
            let _ = writeln!(out, "\t\tMaximum tombstones per slice: {}", tombstones.max);
            let _ = writeln!(
                out,
                "\t\tTombstones scanned (total): {}",
                t.tombstones_scanned_total
            );
            out.push('\n');
        }
        let _ = writeln!(out, "----------------");
    }
    out
}

/// Reads one percentile of a histogram.
type Pick = fn(&Percentiles) -> u64;

/// Percentile rows: 50%, 75%, 95%, 98%, 99%, Min, Max of each column.
fn percentile_table(header: &[&str], units: &[&str], values: &[Percentiles]) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        header.iter().map(|h| (*h).to_owned()).collect(),
        units.iter().map(|u| (*u).to_owned()).collect(),
    ];
    let pick: [(&str, Pick); 7] = [
        ("50%", |p| p.p50),
        ("75%", |p| p.p75),
        ("95%", |p| p.p95),
        ("98%", |p| p.p98),
        ("99%", |p| p.p99),
        ("Min", |p| p.min),
        ("Max", |p| p.max),
    ];
    for (name, value) in pick {
        let mut row = vec![name.to_owned()];
        row.extend(values.iter().map(|p| format!("{:.2}", value(p) as f64)));
        rows.push(row);
    }
    columns(&rows)
}

/// `nodetool tablehistograms`.
pub fn table_histograms(t: &TableStats) -> String {
    format!(
        "{}/{} histograms\n{}\n",
        t.keyspace,
        t.table,
        percentile_table(
            &[
                "Percentile",
                "Read Latency",
                "Write Latency",
                "Range Latency",
                "Tombstones"
            ],
            &["", "(micros)", "(micros)", "(micros)", "(per read)"],
            &[
                t.read_latency_us.unwrap_or_default(),
                t.write_latency_us.unwrap_or_default(),
                t.range_latency_us.unwrap_or_default(),
                t.tombstones_per_read.unwrap_or_default(),
            ],
        )
    )
}

/// `nodetool proxyhistograms`.
pub fn proxy_histograms(reply: &ProxyHistogramsReply) -> String {
    format!(
        "proxy histograms\n{}\n",
        percentile_table(
            &[
                "Percentile",
                "Read Latency",
                "Write Latency",
                "Other Latency"
            ],
            &["", "(micros)", "(micros)", "(micros)"],
            &[
                reply.read_latency_us.unwrap_or_default(),
                reply.write_latency_us.unwrap_or_default(),
                reply.other_latency_us.unwrap_or_default(),
            ],
        )
    )
}

/// `nodetool compactionstats`.
pub fn compaction_stats(reply: &CompactionStatsReply, human_readable: bool) -> String {
    let mut out = format!("pending tasks: {}\n", reply.pending_total);
    for p in &reply.pending {
        let _ = writeln!(out, "- {}.{}: {}", p.keyspace, p.table, p.pending);
    }
    if !reply.active.is_empty() {
        out.push('\n');
        let mut rows = vec![[
            "id",
            "compaction type",
            "keyspace",
            "table",
            "completed",
            "total",
            "unit",
            "progress",
        ]
        .map(str::to_owned)
        .to_vec()];
        for c in &reply.active {
            let (done, total) = if human_readable {
                (file_size(c.done_bytes), file_size(c.total_bytes))
            } else {
                (c.done_bytes.to_string(), c.total_bytes.to_string())
            };
            let progress = if c.total_bytes == 0 {
                0.0
            } else {
                c.done_bytes as f64 * 100.0 / c.total_bytes as f64
            };
            rows.push(vec![
                c.id.clone(),
                c.kind.clone(),
                c.keyspace.clone(),
                c.table.clone(),
                done,
                total,
                "bytes".to_owned(),
                format!("{progress:.2}%"),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out
}

/// `nodetool listsnapshots`.
pub fn list_snapshots(reply: &ListSnapshotsReply) -> String {
    if reply.snapshots.is_empty() {
        return "Snapshot Details: \nThere are no snapshots\n".to_owned();
    }
    let mut rows = vec![[
        "Snapshot name",
        "Keyspace name",
        "Column family name",
        "True size",
        "Size on disk",
    ]
    .map(str::to_owned)
    .to_vec()];
    for s in &reply.snapshots {
        rows.push(vec![
            s.tag.clone(),
            s.keyspace.clone(),
            s.table.clone(),
            file_size(s.true_size_bytes),
            file_size(s.size_bytes),
        ]);
    }
    let true_total: u64 = reply.snapshots.iter().map(|s| s.true_size_bytes).sum();
    format!(
        "Snapshot Details: \n{}\nTotal TrueDiskSpaceUsed: {}\n\n",
        columns(&rows),
        file_size(true_total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str, dc: &str, up: bool) -> Endpoint {
        Endpoint {
            address: address.into(),
            host_id: "6f0e1a52-0000-4000-8000-000000000001".into(),
            data_center: dc.into(),
            rack: "rack1".into(),
            up,
            state: "NORMAL".into(),
            load_bytes: 72_038,
            tokens: vec![-5, 5],
            ownership: 0.5,
            schema_version: "v1".into(),
            release_version: "5.0.0".into(),
        }
    }

    #[test]
    fn sizes_read_like_nodetool() {
        assert_eq!(file_size(0), "0 bytes");
        assert_eq!(file_size(1023), "1023 bytes");
        assert_eq!(file_size(72_038), "70.35 KiB");
        assert_eq!(file_size(3 * 1024 * 1024 * 1024), "3.00 GiB");
    }

    #[test]
    fn status_groups_by_data_center_with_codes() {
        let reply = ClusterReply {
            endpoints: vec![
                endpoint("127.0.0.2", "dc2", false),
                endpoint("127.0.0.1", "dc1", true),
            ],
            ..ClusterReply::default()
        };
        let text = status(&reply, false);
        let dc1 = text.find("Datacenter: dc1").unwrap_or(usize::MAX);
        let dc2 = text.find("Datacenter: dc2").unwrap_or(0);
        assert!(dc1 < dc2, "{text}");
        assert!(
            text.contains("UN  127.0.0.1  70.35 KiB  2       50.0%"),
            "{text}"
        );
        assert!(text.contains("DN  127.0.0.2"), "{text}");
        assert!(text.contains("Owns  "), "{text}");
        assert!(status(&reply, true).contains("Owns (effective)"));
    }

    #[test]
    fn describecluster_counts_unreachable() {
        let reply = ClusterReply {
            cluster_name: "Test Cluster".into(),
            endpoints: vec![
                endpoint("127.0.0.1", "dc1", true),
                endpoint("127.0.0.2", "dc1", false),
            ],
            ..ClusterReply::default()
        };
        let text = describe_cluster(&reply);
        assert!(text.contains("\tv1: [127.0.0.1]\n"), "{text}");
        assert!(text.contains("\tUnreachable: 1\n"), "{text}");
        assert!(text.contains("\tdc1 #Nodes: 2 #Down: 1\n"), "{text}");
    }

    #[test]
    fn histograms_have_every_percentile_row() {
        let p = Percentiles {
            count: 3,
            mean: 20.0,
            min: 10,
            p50: 20,
            p75: 25,
            p95: 30,
            p98: 30,
            p99: 30,
            max: 31,
        };
        let text = proxy_histograms(&ProxyHistogramsReply {
            read_latency_us: Some(p),
            ..ProxyHistogramsReply::default()
        });
        for row in ["50%", "75%", "95%", "98%", "99%", "Min", "Max"] {
            assert!(text.lines().any(|l| l.starts_with(row)), "{row}: {text}");
        }
        assert!(text.contains("31.00"), "{text}");
    }
}
