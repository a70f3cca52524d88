//! One single-partition read's progress, without I/O. Answers, failures
//! and the clock come in; [`ReadAction`]s go out:
//!
//! 1. Data from the closest chosen replica, digests from the others the
//!    consistency level needs.
//! 2. A replica that fails, or has not answered after the speculative
//!    delay, is doubled by a spare live replica (once for the delay).
//! 3. When the answers meet the requirement: if every digest matches the
//!    data, the answer is that data. Otherwise data from everyone who
//!    answered; as soon as enough of them send it to meet the level, it is
//!    reconciled cell by cell, every replica whose data differs from the
//!    merge is repaired, and the client is answered when the repairs are
//!    acknowledged (blocking read repair: QUORUM reads are monotonic).
//!    When the data is what is late, a spare (or a replica that sent a
//!    digest) is asked for it after the speculative delay.
//! 4. The deadline answers ReadTimeout with what was received.

use std::time::Instant;

use storage_lsm::model::{Mutation, PartitionKey, PartitionUpdate, TableId};
use storage_lsm::replica::{digest, reconcile};
use storage_lsm::{PartitionRows, SliceQuery};

use crate::consistency::{ConsistencyLevel, Tally};
use crate::internode::ReadAnswer;

use super::CoordinatorError;

/// What the driver must do.
#[derive(Debug)]
pub enum ReadAction {
    /// Ask this replica for the slice's data, or only its digest.
    Ask { replica: usize, digest_only: bool },
    /// Write the merged data to a stale replica.
    Repair { replica: usize, mutation: Mutation },
    /// The client's answer (given once).
    Answer(Result<Option<PartitionRows>, CoordinatorError>),
}

#[derive(Debug)]
enum Phase {
    /// Data from one, digests from the rest.
    Digests,
    /// Digests differed: data from every replica that answered.
    Data,
    /// Stale replicas being repaired before the answer.
    Repair {
        rows: Option<PartitionRows>,
        waiting: Vec<usize>,
    },
    Answered,
}

/// What a read is for.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub table: TableId,
    pub key: PartitionKey,
    pub query: SliceQuery,
    pub consistency: ConsistencyLevel,
    /// Seconds since the epoch, for TTLs while reconciling.
    pub now_s: i64,
    pub deadline: Instant,
    /// When a replica that has not answered is doubled by a spare.
    pub speculate_at: Instant,
}

/// The state of one read.
#[derive(Debug)]
pub struct ReadHandler {
    request: ReadRequest,
    /// A fresh tally per phase.
    blank: Tally,
    tally: Tally,
    phase: Phase,
    /// Replicas asked in this phase and not yet answered or failed.
    waiting: Vec<usize>,
    answers: Vec<(usize, ReadAnswer)>,
    spares: std::vec::IntoIter<usize>,
    speculated: bool,
    spares_asked: usize,
}

impl ReadHandler {
    /// Starts a read of `targets` (closest first), with `spares` (live
    /// replicas not chosen, closest first) to double slow ones.
    pub fn start(
        request: ReadRequest,
        tally: Tally,
        targets: &[usize],
        spares: Vec<usize>,
    ) -> (ReadHandler, Vec<ReadAction>) {
        let mut handler = ReadHandler {
            request,
            blank: tally.clone(),
            tally,
            phase: Phase::Digests,
            waiting: Vec::new(),
            answers: Vec::new(),
            spares: spares.into_iter(),
            speculated: false,
            spares_asked: 0,
        };
        let actions = targets
            .iter()
            .enumerate()
            .map(|(i, &replica)| handler.ask(replica, i > 0))
            .collect();
        (handler, actions)
    }

    fn ask(&mut self, replica: usize, digest_only: bool) -> ReadAction {
        self.waiting.push(replica);
        ReadAction::Ask {
            replica,
            digest_only,
        }
    }

    /// What is being read.
    pub fn request(&self) -> &ReadRequest {
        &self.request
    }

    /// When the driver must call [`ReadHandler::on_tick`] next.
    pub fn next_wakeup(&self) -> Instant {
        if self.speculated || !matches!(self.phase, Phase::Digests) {
            self.request.deadline
        } else {
            self.request.speculate_at.min(self.request.deadline)
        }
    }

    pub fn is_answered(&self) -> bool {
        matches!(self.phase, Phase::Answered)
    }

    fn has_data(&self) -> bool {
        self.answers
            .iter()
            .any(|(_, a)| matches!(a, ReadAnswer::Data(_)))
    }

    fn timeout(&self) -> CoordinatorError {
        // Repairs not acknowledged count as answers missing (as Cassandra's
        // blocking read repair reports them).
        let received = match &self.phase {
            Phase::Repair { waiting, .. } => self.tally.required().saturating_sub(waiting.len()),
            _ => self.tally.received(),
        };
        CoordinatorError::ReadTimeout {
            consistency: self.request.consistency,
            received,
            required: self.tally.required(),
            data_present: self.has_data() || matches!(self.phase, Phase::Repair { .. }),
        }
    }

    fn answer(&mut self, result: Result<Option<PartitionRows>, CoordinatorError>) -> ReadAction {
        self.phase = Phase::Answered;
        ReadAction::Answer(result)
    }

    /// A replica answered a data or digest request.
    pub fn on_answer(&mut self, replica: usize, answer: ReadAnswer) -> Vec<ReadAction> {
        let Some(at) = self.waiting.iter().position(|r| *r == replica) else {
            return Vec::new();
        };
        if !matches!(self.phase, Phase::Digests | Phase::Data) {
            return Vec::new();
        }
        self.waiting.swap_remove(at);
        self.answers.push((replica, answer));
        self.tally.count(replica);
        let mut actions = Vec::new();
        if self.tally.met() && self.has_data() {
            self.decide(&mut actions);
        } else if !self.tally.met() && self.waiting.is_empty() && self.spares.len() == 0 {
            // Nobody left to ask: the level cannot be met.
            let timeout = self.timeout();
            actions.push(self.answer(Err(timeout)));
        } else if self.tally.met() && !self.waiting.is_empty() {
            // Enough digests but the data is late: wait for it.
        } else if self.tally.met() {
            // Digests only (the data replica failed): ask one for data.
            if let Some(&(first, _)) = self.answers.first() {
                actions.push(self.ask_again(first));
            }
        }
        actions
    }

    /// Asks a replica that already answered a digest for its data.
    fn ask_again(&mut self, replica: usize) -> ReadAction {
        self.answers.retain(|(r, _)| *r != replica);
        self.tally = self.blank.clone();
        for (r, _) in &self.answers {
            self.tally.count(*r);
        }
        self.ask(replica, false)
    }

    /// A replica failed: a spare takes its place, if one is left.
    pub fn on_failure(&mut self, replica: usize) -> Vec<ReadAction> {
        let Some(at) = self.waiting.iter().position(|r| *r == replica) else {
            return Vec::new();
        };
        self.waiting.swap_remove(at);
        let mut actions = Vec::new();
        match &mut self.phase {
            Phase::Digests => {
                if let Some(spare) = self.spares.next() {
                    let digest_only = self.has_data();
                    self.spares_asked += 1;
                    actions.push(self.ask(spare, digest_only));
                } else if self.waiting.is_empty() {
                    // Nobody left to hear from: with enough digests but no
                    // data, ask one of them for its data; else it is over.
                    match self.answers.first() {
                        Some(&(first, _)) if self.tally.met() => {
                            actions.push(self.ask_again(first));
                        }
                        _ => {
                            let timeout = self.timeout();
                            actions.push(self.answer(Err(timeout)));
                        }
                    }
                }
            }
            Phase::Data => {
                if self.waiting.is_empty() {
                    // Reconcile what came: if it still meets the level.
                    if self.tally.met() {
                        self.decide(&mut actions);
                    } else {
                        let timeout = self.timeout();
                        actions.push(self.answer(Err(timeout)));
                    }
                }
            }
            Phase::Repair { .. } | Phase::Answered => {}
        }
        actions
    }

    /// A stale replica acknowledged (or failed) its repair.
    pub fn on_repaired(&mut self, replica: usize, ok: bool) -> Vec<ReadAction> {
        let Phase::Repair { waiting, .. } = &mut self.phase else {
            return Vec::new();
        };
        let Some(at) = waiting.iter().position(|r| *r == replica) else {
            return Vec::new();
        };
        waiting.swap_remove(at);
        if !ok {
            let timeout = self.timeout();
            return vec![self.answer(Err(timeout))];
        }
        if waiting.is_empty() {
            let Phase::Repair { rows, .. } = std::mem::replace(&mut self.phase, Phase::Answered)
            else {
                return Vec::new();
            };
            return vec![ReadAction::Answer(Ok(rows))];
        }
        Vec::new()
    }

    /// Time passed: a speculative retry when due, the timeout at the deadline.
    pub fn on_tick(&mut self, now: Instant) -> Vec<ReadAction> {
        if self.is_answered() {
            return Vec::new();
        }
        if now >= self.request.deadline {
            let timeout = self.timeout();
            return vec![self.answer(Err(timeout))];
        }
        let mut actions = Vec::new();
        if matches!(self.phase, Phase::Digests)
            && !self.speculated
            && now >= self.request.speculate_at
        {
            // Once: next_wakeup moves on to the deadline.
            self.speculated = true;
            if let Some(spare) = self.spares.next() {
                let digest_only = self.has_data();
                self.spares_asked += 1;
                actions.push(self.ask(spare, digest_only));
            } else if !self.has_data() {
                // No spare, and the data is what is late: ask a replica
                // that sent its digest for its data instead.
                if let Some(&(first, _)) = self.answers.first() {
                    actions.push(self.ask_again(first));
                }
            }
        }
        actions
    }

    /// Enough answers, data among them: answer, or go on to data / repair.
    fn decide(&mut self, actions: &mut Vec<ReadAction>) {
        let now_s = self.request.now_s;
        match self.phase {
            Phase::Digests => {
                let data = self.answers.iter().find_map(|(_, a)| match a {
                    ReadAnswer::Data(data) => Some(data.clone()),
                    ReadAnswer::Digest(_) => None,
                });
                let Some(data) = data else { return };
                let expected = digest(data.as_ref());
                let agree = self.answers.iter().all(|(_, a)| match a {
                    ReadAnswer::Data(d) => digest(d.as_ref()) == expected,
                    ReadAnswer::Digest(d) => *d == expected,
                });
                if agree {
                    let rows = reconcile(&self.request.key, data, &self.request.query, now_s)
                        .map(|r| r.rows)
                        .map_err(CoordinatorError::from);
                    actions.push(self.answer(rows));
                    return;
                }
                // Digests differ: data from everyone who answered.
                let answered: Vec<usize> = self.answers.iter().map(|(r, _)| *r).collect();
                self.phase = Phase::Data;
                self.answers.clear();
                self.tally = self.blank.clone();
                self.waiting.clear();
                for replica in answered {
                    actions.push(self.ask(replica, false));
                }
            }
            Phase::Data => {
                // Enough data answers to meet the level: reconcile them
                // (a replica still silent is not waited for, nor repaired).
                let datas: Vec<(usize, Option<PartitionUpdate>)> = self
                    .answers
                    .drain(..)
                    .filter_map(|(r, a)| match a {
                        ReadAnswer::Data(d) => Some((r, d)),
                        ReadAnswer::Digest(_) => None,
                    })
                    .collect();
                let reconciled = match reconcile(
                    &self.request.key,
                    datas.iter().filter_map(|(_, d)| d.clone()),
                    &self.request.query,
                    now_s,
                ) {
                    Ok(reconciled) => reconciled,
                    Err(error) => {
                        actions.push(self.answer(Err(error.into())));
                        return;
                    }
                };
                let Some(merged) = reconciled.merged else {
                    actions.push(self.answer(Ok(reconciled.rows)));
                    return;
                };
                let merged_digest = digest(Some(&merged));
                let stale: Vec<usize> = datas
                    .iter()
                    .filter(|(_, d)| digest(d.as_ref()) != merged_digest)
                    .map(|(r, _)| *r)
                    .collect();
                if stale.is_empty() {
                    actions.push(self.answer(Ok(reconciled.rows)));
                    return;
                }
                for &replica in &stale {
                    actions.push(ReadAction::Repair {
                        replica,
                        mutation: Mutation {
                            table: self.request.table,
                            key: self.request.key.clone(),
                            update: merged.clone(),
                        },
                    });
                }
                self.phase = Phase::Repair {
                    rows: reconciled.rows,
                    waiting: stale,
                };
            }
            Phase::Repair { .. } | Phase::Answered => {}
        }
    }

    /// Spare replicas asked because one was slow or failed (for metrics).
    pub fn spares_asked(&self) -> usize {
        self.spares_asked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::Requirement;
    use crate::strategy::Placement;
    use crate::topology::tests::two_dc_ring;
    use std::time::Duration;

    fn all_of_three() -> (ReadHandler, Vec<ReadAction>, Instant) {
        let ring = two_dc_ring();
        let placement = Placement::Simple {
            replication_factor: 3,
        };
        let tally =
            Requirement::of(ConsistencyLevel::All, &placement, &ring).tally(&ring, &[0, 1, 2]);
        let now = Instant::now();
        let request = ReadRequest {
            table: TableId(1),
            key: PartitionKey::new(1, vec![1]),
            query: SliceQuery::all(),
            consistency: ConsistencyLevel::All,
            now_s: 0,
            deadline: now + Duration::from_secs(5),
            speculate_at: now + Duration::from_millis(250),
        };
        let (handler, actions) = ReadHandler::start(request, tally, &[0, 1, 2], Vec::new());
        (handler, actions, now)
    }

    #[test]
    fn a_read_that_cannot_meet_its_level_answers_when_the_last_replica_does() {
        let (mut h, start, _) = all_of_three();
        assert_eq!(start.len(), 3);
        assert!(
            h.on_failure(1).is_empty(),
            "two replicas still to hear from"
        );
        assert!(h.on_answer(0, ReadAnswer::Data(None)).is_empty());
        let last = h.on_answer(2, ReadAnswer::Digest(storage_lsm::replica::digest(None)));
        match &last[..] {
            [ReadAction::Answer(Err(CoordinatorError::ReadTimeout {
                received, required, ..
            }))] => {
                assert_eq!((*received, *required), (2, 3));
            }
            other => panic!("expected an early ReadTimeout, got {other:?}"),
        }
    }

    #[test]
    fn the_speculative_moment_passes_once_even_with_nothing_to_speculate() {
        let (mut h, _, now) = all_of_three();
        let speculate_at = h.next_wakeup();
        assert!(h.on_tick(speculate_at).is_empty(), "no spare to ask");
        assert_eq!(
            h.next_wakeup(),
            now + Duration::from_secs(5),
            "next: the deadline"
        );
    }
}
