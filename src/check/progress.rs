//! A running check's progress as a value: which stages it went through and where each stands.
//!
//! The coordinator folds the engine's [`Progress`] events into one [`ProgressView`] per check
//! and hands it to its [`super::coordinator::Sink`]; renderers (`slack/blocks.rs`) turn it into
//! text. This module holds no text for people and no markup — no Slack, no I/O.

use super::Progress;
use crate::domain::{Carrier, CheckKey, Tugboat};
use crate::jenkins::JobProgress;
use std::time::Duration;

/// What a running check has done so far, oldest stage first.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressView {
    /// The check.
    pub key: CheckKey,
    /// Picked up again from its Jenkins job after a bot restart (or from a dead replica).
    pub resumed: bool,
    /// The stages so far; a stage that moves on (the Jenkins queue, the build) is updated in
    /// place rather than repeated.
    pub stages: Vec<Stage>,
}

/// One stage of a running check.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Not started: `running` checks (the configured maximum) are running already.
    WaitingForSlot {
        /// How many checks run at once at most, all busy.
        running: usize,
    },
    /// Asking the cluster directory about the location.
    LookingUp,
    /// The directory answered: the tugboat, and the carrier chosen for the job.
    Located {
        /// The tugboat.
        tugboat: Tugboat,
        /// The carrier.
        carrier: Carrier,
    },
    /// Triggering the Jenkins job (its name, from `[environments.*] jenkins_job`).
    Triggering {
        /// The job's name: the last part of its configured path.
        job: String,
    },
    /// Waiting in Jenkins' queue.
    JenkinsQueue {
        /// Jenkins' own reason (outside text), if it gave one.
        why: Option<String>,
    },
    /// The build is known.
    Build {
        /// Its number.
        number: u64,
        /// Running or finished.
        state: BuildState,
    },
    /// The build finished; its artifacts are being read.
    ReadingArtifacts {
        /// How long the check had been running when the reading started.
        elapsed: Duration,
    },
}

/// Where a Jenkins build stands.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildState {
    /// Running for `elapsed`, against Jenkins' estimate (if it has one).
    Running {
        /// How long it has been running.
        elapsed: Duration,
        /// How long Jenkins expects it to take.
        estimated: Option<Duration>,
    },
    /// Finished with Jenkins' result (outside text, e.g. `SUCCESS`).
    Finished {
        /// The result.
        result: String,
    },
}

impl ProgressView {
    /// A check with no stage yet.
    pub fn new(key: CheckKey) -> Self {
        ProgressView {
            key,
            resumed: false,
            stages: Vec::new(),
        }
    }

    /// A check waiting for one of the `running` busy slots.
    pub fn waiting_for_slot(key: CheckKey, running: usize) -> Self {
        ProgressView {
            stages: vec![Stage::WaitingForSlot { running }],
            ..ProgressView::new(key)
        }
    }

    /// Folds one event in; `elapsed` is how long the check has run. Returns whether anything
    /// people see changed (the resume point alone changes nothing shown).
    pub fn apply(&mut self, p: &Progress, elapsed: Duration) -> bool {
        match p {
            Progress::LookingUp => self.stages.push(Stage::LookingUp),
            Progress::Triggering {
                tugboat,
                carrier,
                job,
            } => {
                self.stages.push(Stage::Located {
                    tugboat: tugboat.clone(),
                    carrier: carrier.clone(),
                });
                self.stages.push(Stage::Triggering { job: job.clone() });
            }
            Progress::Job(_) => return false,
            Progress::Jenkins(JobProgress::Queued { why, .. }) => {
                self.replace_last_if(
                    |s| matches!(s, Stage::JenkinsQueue { .. }),
                    Stage::JenkinsQueue { why: why.clone() },
                );
            }
            Progress::Jenkins(JobProgress::Running {
                build,
                elapsed,
                estimated,
            }) => self.replace_last_if(
                |s| matches!(s, Stage::Build { .. }),
                Stage::Build {
                    number: build.number,
                    state: BuildState::Running {
                        elapsed: *elapsed,
                        estimated: *estimated,
                    },
                },
            ),
            Progress::Jenkins(JobProgress::Finished { build, result }) => self.replace_last_if(
                |s| matches!(s, Stage::Build { .. }),
                Stage::Build {
                    number: build.number,
                    state: BuildState::Finished {
                        result: result.clone(),
                    },
                },
            ),
            Progress::ReadingArtifacts => self.stages.push(Stage::ReadingArtifacts { elapsed }),
        }
        true
    }

    /// Replaces the last stage when `same` says it is the one moving on; appends otherwise.
    fn replace_last_if(&mut self, same: impl Fn(&Stage) -> bool, stage: Stage) {
        if self.stages.last().is_some_and(same) {
            self.stages.pop();
        }
        self.stages.push(stage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Environment, LocationId};
    use crate::jenkins::{BuildRef, QueueRef};

    fn key() -> CheckKey {
        CheckKey {
            environment: Environment::Prod,
            location: LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap(),
        }
    }

    fn build(number: u64) -> BuildRef {
        BuildRef {
            number,
            url: url::Url::parse(&format!("http://jenkins.example/job/x/{number}/")).unwrap(),
        }
    }

    #[test]
    fn a_check_folds_into_one_stage_per_step_updated_in_place() {
        let mut view = ProgressView::new(key());
        let t = Duration::from_secs(1);
        assert!(view.apply(&Progress::LookingUp, t));
        view.apply(
            &Progress::Triggering {
                tugboat: Tugboat::parse("prod-wdc04.carrier107").unwrap(),
                carrier: Carrier::parse("prod-wdc04-carrier2").unwrap(),
                job: "armada-ha-master-get-info".into(),
            },
            t,
        );
        let queued = |why: &str| {
            Progress::Jenkins(JobProgress::Queued {
                queue: QueueRef {
                    id: 7,
                    url: url::Url::parse("http://jenkins.example/queue/item/7/").unwrap(),
                },
                why: Some(why.into()),
            })
        };
        view.apply(&queued("waiting"), t);
        view.apply(&queued("still waiting"), t);
        let running = |s| {
            Progress::Jenkins(JobProgress::Running {
                build: build(5),
                elapsed: Duration::from_secs(s),
                estimated: Some(Duration::from_secs(60)),
            })
        };
        view.apply(&running(1), t);
        view.apply(&running(30), t);
        view.apply(
            &Progress::Jenkins(JobProgress::Finished {
                build: build(5),
                result: "SUCCESS".into(),
            }),
            t,
        );
        view.apply(&Progress::ReadingArtifacts, Duration::from_secs(42));

        assert_eq!(view.stages.len(), 6, "{view:#?}");
        assert_eq!(view.stages[0], Stage::LookingUp);
        assert!(matches!(view.stages[1], Stage::Located { .. }));
        assert_eq!(
            view.stages[2],
            Stage::Triggering {
                job: "armada-ha-master-get-info".into()
            }
        );
        assert_eq!(
            view.stages[3],
            Stage::JenkinsQueue {
                why: Some("still waiting".into())
            }
        );
        assert_eq!(
            view.stages[4],
            Stage::Build {
                number: 5,
                state: BuildState::Finished {
                    result: "SUCCESS".into()
                }
            }
        );
        assert_eq!(
            view.stages[5],
            Stage::ReadingArtifacts {
                elapsed: Duration::from_secs(42)
            }
        );
    }

    #[test]
    fn the_resume_point_shows_nothing() {
        let mut view = ProgressView::new(key());
        let changed = view.apply(
            &Progress::Job(super::super::ResumePoint {
                tugboat: "prod-wdc04.carrier107".into(),
                carrier: "prod-wdc04-carrier2".into(),
                job: crate::jenkins::JobHandle::Build(build(5)),
            }),
            Duration::ZERO,
        );
        assert!(!changed);
        assert!(view.stages.is_empty());
    }
}
