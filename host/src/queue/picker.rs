//! Smooth weighted round robin over queues (the nginx algorithm): each pick adds every eligible
//! queue's weight to its credit, serves the queue with the most credit and takes the eligible
//! total from it. Over any run of picks among the same eligible queues the shares match the
//! weights exactly, interleaved (6:3:1 gives c d c c d c l c d c, not six c in a row). A queue
//! found empty is not eligible for that pick, so it neither gains credit nor holds others back:
//! its share goes to the rest. Weights are kept within [`MIN_WEIGHT`](super::MIN_WEIGHT) and
//! [`MAX_WEIGHT`](super::MAX_WEIGHT), whoever gives them.

/// Chooses the queue to serve next.
#[derive(Debug, Clone)]
pub struct Picker {
    /// (name, weight, credit), heaviest first.
    queues: Vec<(String, i64, i64)>,
    strict: bool,
}

impl Picker {
    pub fn new(weights: &[(String, u32)], strict: bool) -> Picker {
        let mut p = Picker {
            queues: Vec::new(),
            strict,
        };
        for (name, weight) in weights {
            p.declare(name, *weight);
        }
        p
    }

    /// A picker in the state [`Picker::queues`] showed: (name, weight, credit), heaviest first.
    pub fn resume(queues: Vec<(String, i64, i64)>, strict: bool) -> Picker {
        Picker { queues, strict }
    }

    /// Adds a queue, its weight clamped to the bounds, unless it is known (a known queue keeps
    /// its weight).
    pub fn declare(&mut self, name: &str, weight: u32) {
        if self.queues.iter().any(|(n, _, _)| n == name) {
            return;
        }
        self.queues
            .push((name.to_string(), i64::from(super::clamp_weight(weight)), 0));
        self.queues
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }

    /// The queues as (name, weight, credit), heaviest first, leaving out those in `skip`.
    pub fn queues(&self, skip: &[String]) -> Vec<(String, i64, i64)> {
        self.queues
            .iter()
            .filter(|(n, _, _)| !skip.contains(n))
            .cloned()
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.queues.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// The queues and their weights, heaviest first.
    pub fn weights(&self) -> Vec<(String, u32)> {
        self.queues
            .iter()
            .map(|(n, w, _)| (n.clone(), u32::try_from(*w).unwrap_or(u32::MAX)))
            .collect()
    }

    /// The queue to try next, skipping those in `empty`; `None` when all are empty.
    pub fn peek(&self, empty: &[String]) -> Option<String> {
        let eligible = self.queues.iter().filter(|(n, _, _)| !empty.contains(n));
        if self.strict {
            return eligible.map(|(n, _, _)| n.clone()).next();
        }
        eligible
            .max_by(|a, b| (a.2 + a.1).cmp(&(b.2 + b.1)).then_with(|| b.0.cmp(&a.0)))
            .map(|(n, _, _)| n.clone())
    }

    /// Records that `served` was served, with the queues in `empty` not eligible.
    pub fn served(&mut self, served: &str, empty: &[String]) {
        if self.strict {
            return;
        }
        let mut total = 0;
        for (name, weight, credit) in &mut self.queues {
            if !empty.contains(name) {
                *credit += *weight;
                total += *weight;
            }
        }
        if let Some((_, _, credit)) = self.queues.iter_mut().find(|(n, _, _)| n == served) {
            *credit -= total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picker(strict: bool) -> Picker {
        Picker::new(
            &[
                ("critical".into(), 6),
                ("default".into(), 3),
                ("low".into(), 1),
            ],
            strict,
        )
    }

    fn run(p: &mut Picker, n: usize, empty: &[String]) -> Vec<String> {
        (0..n)
            .map(|_| {
                let q = p.peek(empty).unwrap();
                p.served(&q, empty);
                q
            })
            .collect()
    }

    #[test]
    fn shares_follow_the_weights_interleaved() {
        let mut p = picker(false);
        let picks = run(&mut p, 10, &[]);
        let count = |q: &str| picks.iter().filter(|p| *p == q).count();
        assert_eq!(
            (count("critical"), count("default"), count("low")),
            (6, 3, 1)
        );
        // Never more than two picks of critical in a row (smooth, not bursty).
        assert!(
            !picks.windows(3).any(|w| w.iter().all(|q| q == "critical")),
            "{picks:?}"
        );
    }

    #[test]
    fn an_empty_queue_yields_its_share() {
        let mut p = picker(false);
        let picks = run(&mut p, 8, &["critical".to_string()]);
        let low = picks.iter().filter(|q| *q == "low").count();
        assert_eq!(low, 2, "default 3 : low 1 among the two: {picks:?}");
    }

    #[test]
    fn strict_priority_serves_the_heaviest_non_empty_queue() {
        let mut p = picker(true);
        assert_eq!(run(&mut p, 3, &[]), ["critical", "critical", "critical"]);
        assert_eq!(p.peek(&["critical".to_string()]).unwrap(), "default");
    }

    #[test]
    fn declared_queues_join_with_their_weight() {
        let mut p = picker(false);
        p.declare("reports", 10);
        let picks = run(&mut p, 20, &[]);
        assert_eq!(picks.iter().filter(|q| *q == "reports").count(), 10);
    }

    #[test]
    fn a_declared_weight_is_bounded_and_never_changes_a_known_queue() {
        let mut p = picker(false);
        p.declare("critical", u32::MAX);
        p.declare("flood", u32::MAX);
        p.declare("zero", 0);
        let weights = p.weights();
        let weight = |q: &str| weights.iter().find(|(n, _)| n == q).unwrap().1;
        assert_eq!(
            (weight("critical"), weight("flood"), weight("zero")),
            (6, 1000, 1)
        );
    }
}
