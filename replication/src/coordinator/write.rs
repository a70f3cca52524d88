//! One write's progress, without I/O: which replicas to send to, which get
//! a hint, and when the client has its answer. Acknowledgements, failures
//! and the deadline come in; [`WriteAction`]s go out. The production driver
//! (in `mod.rs`) and the simulation (`simulation.rs`) run the same handler.
//!
//! Hints are decided here and only here: for a replica down at the start
//! (unless down longer than the hint window), and for one that fails or
//! has not answered by the deadline — also after the client was answered.

use crate::consistency::{ConsistencyLevel, Tally};

use super::{CoordinatorError, WriteType};

/// How the coordinator sees a replica when the write starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// This node: applied in place.
    Local,
    /// Up as far as gossip knows: sent a message.
    Up,
    /// Down: not sent anything.
    Down,
}

/// A replica of the written partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTarget {
    pub replica: usize,
    pub state: ReplicaState,
    /// Whether a hint may be kept for it (its host id is known and it has
    /// not been down longer than the hint window).
    pub hintable: bool,
}

/// What the driver must do.
#[derive(Debug)]
pub enum WriteAction {
    /// Apply the mutation to the local engine, then report it.
    ApplyLocal(usize),
    /// Send the mutation to this replica.
    Send(usize),
    /// Keep a hint for this replica.
    Hint(usize),
    /// The client's answer (given once).
    Answer(Result<(), CoordinatorError>),
}

/// The state of one write.
#[derive(Debug)]
pub struct WriteHandler {
    consistency: ConsistencyLevel,
    write_type: WriteType,
    tally: Tally,
    targets: Vec<WriteTarget>,
    /// Replicas asked that have not settled (acknowledged or failed).
    waiting: Vec<usize>,
    hinted: bool,
    answered: bool,
}

impl WriteHandler {
    /// Starts a write to `targets`; the requirement's `tally` counts their
    /// acknowledgements.
    pub fn start(
        consistency: ConsistencyLevel,
        write_type: WriteType,
        tally: Tally,
        targets: Vec<WriteTarget>,
    ) -> (WriteHandler, Vec<WriteAction>) {
        let mut handler = WriteHandler {
            consistency,
            write_type,
            tally,
            targets,
            waiting: Vec::new(),
            hinted: false,
            answered: false,
        };
        let mut actions = Vec::new();
        // Messages first, so the replicas work while this node applies.
        for target in &handler.targets {
            match target.state {
                ReplicaState::Up => {
                    handler.waiting.push(target.replica);
                    actions.push(WriteAction::Send(target.replica));
                }
                ReplicaState::Down if target.hintable => {
                    handler.hinted = true;
                    actions.push(WriteAction::Hint(target.replica));
                }
                ReplicaState::Down | ReplicaState::Local => {}
            }
        }
        for target in &handler.targets {
            if target.state == ReplicaState::Local {
                handler.waiting.push(target.replica);
                actions.push(WriteAction::ApplyLocal(target.replica));
            }
        }
        handler.answer_if_decided(&mut actions);
        (handler, actions)
    }

    /// `replica` applied the write.
    pub fn on_ack(&mut self, replica: usize) -> Vec<WriteAction> {
        let mut actions = Vec::new();
        if self.settle(replica) {
            self.tally.count(replica);
            self.answer_if_decided(&mut actions);
        }
        actions
    }

    /// `replica` failed or did not answer in time: a hint if it may have one.
    pub fn on_failure(&mut self, replica: usize) -> Vec<WriteAction> {
        let mut actions = Vec::new();
        if self.settle(replica) {
            let hintable = self
                .targets
                .iter()
                .any(|t| t.replica == replica && t.hintable && t.state == ReplicaState::Up);
            if hintable {
                self.hinted = true;
                actions.push(WriteAction::Hint(replica));
            }
            self.answer_if_decided(&mut actions);
        }
        actions
    }

    /// The local engine refused the write: that is the client's answer.
    pub fn on_local_error(
        &mut self,
        replica: usize,
        error: storage_lsm::Error,
    ) -> Vec<WriteAction> {
        self.settle(replica);
        if self.answered {
            return Vec::new();
        }
        self.answered = true;
        vec![WriteAction::Answer(Err(CoordinatorError::Storage(error)))]
    }

    /// The deadline passed: a WriteTimeout unless already answered.
    /// Replicas still waiting are reported by their own failures later.
    pub fn on_deadline(&mut self) -> Option<WriteAction> {
        if self.answered {
            return None;
        }
        self.answered = true;
        Some(WriteAction::Answer(Err(self.timeout())))
    }

    /// Whether every replica asked has settled (nothing more will happen).
    pub fn is_settled(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Replicas asked that have neither acknowledged nor failed.
    pub fn unsettled(&self) -> Vec<usize> {
        self.waiting.clone()
    }

    /// Whether the client has its answer.
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    fn settle(&mut self, replica: usize) -> bool {
        match self.waiting.iter().position(|r| *r == replica) {
            Some(at) => {
                self.waiting.swap_remove(at);
                true
            }
            None => false,
        }
    }

    fn timeout(&self) -> CoordinatorError {
        CoordinatorError::WriteTimeout {
            consistency: self.consistency,
            received: self.tally.received(),
            required: self.tally.required(),
            write_type: self.write_type,
        }
    }

    fn answer_if_decided(&mut self, actions: &mut Vec<WriteAction>) {
        if self.answered {
            return;
        }
        let met = self.tally.met() || (self.consistency == ConsistencyLevel::Any && self.hinted);
        if met {
            self.answered = true;
            actions.push(WriteAction::Answer(Ok(())));
        } else if self.waiting.is_empty() {
            // Nobody left to hear from: waiting for the deadline would
            // only delay the same answer.
            self.answered = true;
            actions.push(WriteAction::Answer(Err(self.timeout())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::Requirement;
    use crate::strategy::Placement;
    use crate::topology::tests::two_dc_ring;

    fn targets(states: &[(usize, ReplicaState)]) -> Vec<WriteTarget> {
        states
            .iter()
            .map(|(replica, state)| WriteTarget {
                replica: *replica,
                state: *state,
                hintable: true,
            })
            .collect()
    }

    fn handler(
        consistency: ConsistencyLevel,
        states: &[(usize, ReplicaState)],
    ) -> (WriteHandler, Vec<WriteAction>) {
        let ring = two_dc_ring();
        let placement = Placement::Simple {
            replication_factor: 3,
        };
        let replicas: Vec<usize> = states.iter().map(|(r, _)| *r).collect();
        let tally = Requirement::of(consistency, &placement, &ring).tally(&ring, &replicas);
        WriteHandler::start(consistency, WriteType::Simple, tally, targets(states))
    }

    fn answers(actions: &[WriteAction]) -> Vec<bool> {
        actions
            .iter()
            .filter_map(|a| match a {
                WriteAction::Answer(result) => Some(result.is_ok()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn quorum_answers_on_the_second_ack_and_hints_a_late_failure() {
        use ReplicaState::*;
        let (mut h, start) = handler(ConsistencyLevel::Quorum, &[(0, Local), (1, Up), (2, Up)]);
        assert!(matches!(
            start[..],
            [
                WriteAction::Send(1),
                WriteAction::Send(2),
                WriteAction::ApplyLocal(0)
            ]
        ));
        assert!(h.on_ack(0).is_empty());
        assert_eq!(answers(&h.on_ack(2)), vec![true]);
        assert!(h.on_ack(2).is_empty(), "a second ack changes nothing");
        let late = h.on_failure(1);
        assert!(matches!(late[..], [WriteAction::Hint(1)]), "{late:?}");
        assert!(h.is_settled());
    }

    #[test]
    fn a_down_replica_is_hinted_at_once_and_any_is_met_by_a_hint() {
        use ReplicaState::*;
        let (_, start) = handler(ConsistencyLevel::Any, &[(1, Down), (2, Down)]);
        assert!(matches!(
            start[..],
            [
                WriteAction::Hint(1),
                WriteAction::Hint(2),
                WriteAction::Answer(Ok(()))
            ]
        ));
    }

    #[test]
    fn failures_that_leave_nobody_to_wait_for_answer_a_timeout_with_the_counts() {
        use ReplicaState::*;
        let (mut h, _) = handler(ConsistencyLevel::All, &[(0, Local), (1, Up), (2, Up)]);
        h.on_ack(0);
        h.on_failure(1);
        let last = h.on_failure(2);
        match &last[..] {
            [WriteAction::Hint(2), WriteAction::Answer(Err(CoordinatorError::WriteTimeout {
                received, required, ..
            }))] => {
                assert_eq!((*received, *required), (1, 3));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(h.on_deadline().is_none(), "answered once");
    }

    #[test]
    fn the_deadline_answers_once() {
        use ReplicaState::*;
        let (mut h, _) = handler(ConsistencyLevel::Quorum, &[(0, Up), (1, Up), (2, Up)]);
        h.on_ack(1);
        assert!(matches!(
            h.on_deadline(),
            Some(WriteAction::Answer(Err(CoordinatorError::WriteTimeout {
                received: 1,
                required: 2,
                ..
            })))
        ));
        assert!(answers(&h.on_ack(0)).is_empty(), "no second answer");
    }
}
