//! Rate limits per sending peer and behavior class, so one peer flooding public
//! behaviors cannot starve the others.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The class a behavior belongs to, by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// `/public/...`: anyone may call; limited per peer.
    Public,
    /// `/broadcast/...`: gossip; limited per peer.
    Broadcast,
    /// Everything else: authenticated; limited per peer more generously.
    Default,
}

impl Class {
    /// The class of `behavior`.
    pub fn of(behavior: &str) -> Class {
        if behavior == "/public" || behavior.starts_with("/public/") {
            Class::Public
        } else if behavior == "/broadcast" || behavior.starts_with("/broadcast/") {
            Class::Broadcast
        } else {
            Class::Default
        }
    }

    /// The class name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Broadcast => "broadcast",
            Class::Default => "default",
        }
    }
}

/// Messages per second and burst for one class.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Sustained messages per second per peer.
    pub per_second: u32,
    /// Burst allowed above the sustained rate.
    pub burst: u32,
}

/// Rates per class.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    /// `/public/...`.
    pub public: Rate,
    /// `/broadcast/...`.
    pub broadcast: Rate,
    /// Everything else.
    pub default: Rate,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            public: Rate { per_second: 50, burst: 100 },
            broadcast: Rate { per_second: 20, burst: 50 },
            default: Rate { per_second: 5_000, burst: 10_000 },
        }
    }
}

fn limiter(rate: Rate) -> DefaultKeyedRateLimiter<String> {
    let per_second = NonZeroU32::new(rate.per_second.max(1)).expect("at least 1");
    let burst = NonZeroU32::new(rate.burst.max(1)).expect("at least 1");
    RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
}

/// Keyed limiters, one per class, keyed by peer.
pub struct Limiter {
    public: DefaultKeyedRateLimiter<String>,
    broadcast: DefaultKeyedRateLimiter<String>,
    default: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

impl Limiter {
    /// Limiters with `rates`.
    pub fn new(rates: Rates) -> Limiter {
        Limiter {
            public: limiter(rates.public),
            broadcast: limiter(rates.broadcast),
            default: limiter(rates.default),
        }
    }

    /// Whether `peer` may send one more message of `class` now.
    pub fn allow(&self, peer: &str, class: Class) -> bool {
        let limiter = match class {
            Class::Public => &self.public,
            Class::Broadcast => &self.broadcast,
            Class::Default => &self.default,
        };
        limiter.check_key(&peer.to_string()).is_ok()
    }

    /// Forgets peers whose buckets are full again (call periodically to bound memory).
    pub fn forget_idle(&self) {
        self.public.retain_recent();
        self.broadcast.retain_recent();
        self.default.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_path() {
        assert_eq!(Class::of("/public/hello"), Class::Public);
        assert_eq!(Class::of("/publicity"), Class::Default);
        assert_eq!(Class::of("/broadcast/hello"), Class::Broadcast);
        assert_eq!(Class::of("/dms/node/peers/list"), Class::Default);
    }

    #[test]
    fn one_flooding_peer_does_not_limit_another() {
        let rates = Rates { public: Rate { per_second: 1, burst: 3 }, ..Rates::default() };
        let limiter = Limiter::new(rates);
        let allowed = (0..10).filter(|_| limiter.allow("flood", Class::Public)).count();
        assert_eq!(allowed, 3);
        assert!(limiter.allow("polite", Class::Public));
        assert!(limiter.allow("flood", Class::Default));
    }
}
