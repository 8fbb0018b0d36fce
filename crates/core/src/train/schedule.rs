//! Learning-rate schedules, evaluated per optimisation step.

use serde::{Deserialize, Serialize};

/// How the learning rate changes over training (after an optional linear warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Cosine decay from the base rate to 1% of it at the last step.
    Cosine,
    /// Multiply by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
}

/// Everything needed to compute the learning rate at a step.
#[derive(Debug, Clone, Copy)]
pub struct LrPlan {
    /// Base learning rate.
    pub base: f64,
    /// Schedule kind.
    pub schedule: Schedule,
    /// Linear warm-up length in steps.
    pub warmup_steps: usize,
    /// Total number of steps of the whole run.
    pub total_steps: usize,
    /// Steps per epoch (for [`Schedule::Step`]).
    pub steps_per_epoch: usize,
    /// Epochs between decays (for [`Schedule::Step`]).
    pub step_epochs: usize,
    /// Decay factor (for [`Schedule::Step`]).
    pub gamma: f64,
}

impl LrPlan {
    /// The learning rate at optimisation step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.base * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.schedule {
            Schedule::Constant => self.base,
            Schedule::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let floor = 0.01 * self.base;
                floor + (self.base - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step => {
                let epoch = step / self.steps_per_epoch.max(1);
                self.base * self.gamma.powi((epoch / self.step_epochs.max(1)) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(schedule: Schedule) -> LrPlan {
        LrPlan {
            base: 1.0,
            schedule,
            warmup_steps: 2,
            total_steps: 12,
            steps_per_epoch: 4,
            step_epochs: 1,
            gamma: 0.5,
        }
    }

    #[test]
    fn warmup_then_schedule() {
        let p = plan(Schedule::Constant);
        assert_eq!((p.at(0), p.at(1), p.at(2), p.at(11)), (0.5, 1.0, 1.0, 1.0));
        let c = plan(Schedule::Cosine);
        assert!((c.at(2) - 1.0).abs() < 1e-12);
        assert!((c.at(12) - 0.01).abs() < 1e-12);
        assert!(c.at(5) > c.at(8));
        let s = plan(Schedule::Step);
        assert_eq!((s.at(3), s.at(4), s.at(8)), (1.0, 0.5, 0.25));
    }
}
