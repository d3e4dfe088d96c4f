//! The wall-clock phases the pipeline ticks at: shard agents, then group
//! agents, then gateways, each at its own fraction of the interval.

use std::time::Duration;

/// Where in each interval a stage runs, as a fraction of the interval.
///
/// Every process aligns its ticks to the wall clock (`k * interval + phase`),
/// so the pipeline runs in order instead of at random offsets: shard agents
/// publish at the start of the interval, group agents merge 15% in, and
/// gateways refresh 30% in. A write then waits at most one interval plus 30%
/// to reach `/top`, instead of up to three full intervals when the three
/// stages tick independently. It assumes clocks synchronised (NTP) to well
/// under 15% of the interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Shard agents (and `--role all`, which merges right after).
    Shard,
    /// Group agents.
    Group,
    /// Gateway refreshers.
    Gateway,
}

impl Phase {
    fn fraction(self) -> f64 {
        match self {
            Phase::Shard => 0.0,
            Phase::Group => 0.15,
            Phase::Gateway => 0.30,
        }
    }

    /// How long from `now` (since the Unix epoch) until this phase's next
    /// tick of `interval`; never zero, so a loop always advances.
    pub fn until_next(self, interval: Duration, now: Duration) -> Duration {
        let period = interval.as_millis().max(1) as i128;
        let offset = (period as f64 * self.fraction()) as i128;
        let now_ms = now.as_millis() as i128;
        // The first k * period + offset strictly after now.
        let next = ((now_ms - offset).div_euclid(period) + 1) * period + offset;
        Duration::from_millis((next - now_ms) as u64)
    }

    /// Sleeps until this phase's next tick of `interval`.
    pub async fn sleep(self, interval: Duration) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        tokio::time::sleep(self.until_next(interval, now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_align_to_the_wall_clock() {
        let second = Duration::from_secs(1);
        let at = |ms| Duration::from_millis(ms);
        assert_eq!(Phase::Shard.until_next(second, at(10_250)), at(750));
        assert_eq!(
            Phase::Shard.until_next(second, at(10_000)),
            at(1000),
            "never zero"
        );
        assert_eq!(Phase::Group.until_next(second, at(10_100)), at(50));
        assert_eq!(Phase::Group.until_next(second, at(10_150)), at(1000));
        assert_eq!(Phase::Gateway.until_next(second, at(10_200)), at(100));
        assert_eq!(Phase::Gateway.until_next(second, at(10_400)), at(900));
        let five_min = Duration::from_secs(300);
        assert_eq!(Phase::Group.until_next(five_min, at(0)), at(45_000));
    }
}
