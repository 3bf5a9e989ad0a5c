//! What the load asks of the shop, and how often: scenarios and test cards drawn by weight from
//! a seeded generator, so that a run with the same seed asks for the same sequence.

use std::fmt;

use anyhow::{Context, bail};

/// One thing a shopper does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// List the products, then read one.
    Browse,
    /// Place an order with one of the test cards and follow it to a terminal state.
    Order,
    /// Cancel one of the load's own confirmed orders.
    Cancel,
    /// Open a support ticket about one of the load's orders.
    Ticket,
}

/// The simulated network's test cards: number and the name the report uses.
pub const CARDS: [(&str, &str); 5] = [
    ("4242424242424242", "approved"),
    ("4000000000000002", "declined"),
    ("4000000000009995", "insufficient_funds"),
    ("4000000000000119", "transient_error"),
    ("4000000000003220", "slow"),
];

/// Relative weights of the scenarios and of the cards an order pays with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    pub browse: u32,
    pub order: u32,
    pub cancel: u32,
    pub ticket: u32,
    /// One weight per entry of [`CARDS`], in that order.
    pub cards: [u32; CARDS.len()],
}

impl Default for Mix {
    /// Mostly browsing, a third ordering, a little after-sales; every card alike.
    fn default() -> Self {
        Self { browse: 60, order: 30, cancel: 5, ticket: 5, cards: [1; CARDS.len()] }
    }
}

impl Mix {
    /// Orders only, paid with the approved card: every order should confirm.
    pub fn approved_orders_only() -> Self {
        Self { browse: 0, order: 1, cancel: 0, ticket: 0, cards: [1, 0, 0, 0, 0] }
    }

    /// `browse=60,order=30,cancel=5,ticket=5`; scenarios not named weigh 0.
    pub fn parse_scenarios(&mut self, text: &str) -> anyhow::Result<()> {
        let (mut browse, mut order, mut cancel, mut ticket) = (0, 0, 0, 0);
        for (name, weight) in pairs(text)? {
            match name {
                "browse" => browse = weight,
                "order" => order = weight,
                "cancel" => cancel = weight,
                "ticket" => ticket = weight,
                other => bail!("unknown scenario {other:?} (browse, order, cancel, ticket)"),
            }
        }
        if browse + order + cancel + ticket == 0 {
            bail!("the scenario weights add up to zero");
        }
        (self.browse, self.order, self.cancel, self.ticket) = (browse, order, cancel, ticket);
        Ok(())
    }

    /// `approved=5,declined=1`; cards not named weigh 0.
    pub fn parse_cards(&mut self, text: &str) -> anyhow::Result<()> {
        let mut cards = [0; CARDS.len()];
        for (name, weight) in pairs(text)? {
            let index = CARDS.iter().position(|(_, card)| *card == name).with_context(|| {
                let names: Vec<&str> = CARDS.iter().map(|(_, card)| *card).collect();
                format!("unknown card {name:?} ({})", names.join(", "))
            })?;
            cards[index] = weight;
        }
        if cards.iter().all(|w| *w == 0) {
            bail!("the card weights add up to zero");
        }
        self.cards = cards;
        Ok(())
    }

    pub fn scenario(&self, rng: &mut SplitMix64) -> Scenario {
        let weights = [self.browse, self.order, self.cancel, self.ticket];
        let scenarios = [Scenario::Browse, Scenario::Order, Scenario::Cancel, Scenario::Ticket];
        pick(&weights, rng).map_or(Scenario::Browse, |i| scenarios[i])
    }

    /// An index into [`CARDS`].
    pub fn card(&self, rng: &mut SplitMix64) -> usize {
        pick(&self.cards, rng).unwrap_or(0)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "browse={},order={},cancel={},ticket={}",
            self.browse, self.order, self.cancel, self.ticket
        )?;
        let cards: Vec<String> =
            CARDS.iter().zip(self.cards).map(|((_, name), weight)| format!("{name}={weight}")).collect();
        write!(f, "; cards {}", cards.join(","))
    }
}

fn pairs(text: &str) -> anyhow::Result<Vec<(&str, u32)>> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (name, weight) =
                part.split_once('=').with_context(|| format!("{part:?} is not name=weight"))?;
            let weight =
                weight.trim().parse().with_context(|| format!("{part:?}: the weight is not a number"))?;
            Ok((name.trim(), weight))
        })
        .collect()
}

/// The index drawn with probability weight / total; `None` when every weight is zero.
fn pick(weights: &[u32], rng: &mut SplitMix64) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut point = rng.below(total);
    for (index, weight) in weights.iter().enumerate() {
        let weight = u64::from(*weight);
        if point < weight {
            return Some(index);
        }
        point -= weight;
    }
    None
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64): the load needs
/// reproducible draws, not cryptographic ones, and the workspace has no `rand`.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0); the modulo bias is negligible for the small bounds used.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_draws_the_same_scenarios() {
        let mix = Mix::default();
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..100).map(|_| mix.scenario(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn scenarios_are_drawn_in_proportion_to_their_weights() {
        let mix = Mix { browse: 6, order: 3, cancel: 1, ticket: 0, cards: [1; CARDS.len()] };
        let mut rng = SplitMix64::new(42);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[mix.scenario(&mut rng) as usize] += 1;
        }
        assert!((59_000..61_000).contains(&counts[0]), "{counts:?}");
        assert!((29_000..31_000).contains(&counts[1]), "{counts:?}");
        assert!((9_000..11_000).contains(&counts[2]), "{counts:?}");
        assert_eq!(counts[3], 0);
    }

    #[test]
    fn a_card_with_weight_zero_is_never_drawn() {
        let mix = Mix::approved_orders_only();
        let mut rng = SplitMix64::new(1);
        assert!((0..1000).all(|_| mix.card(&mut rng) == 0));
    }

    #[test]
    fn weights_parse_from_name_value_pairs() -> anyhow::Result<()> {
        let mut mix = Mix::default();
        mix.parse_scenarios("order=1, browse=2")?;
        mix.parse_cards("declined=3")?;
        assert_eq!((mix.browse, mix.order, mix.cancel, mix.ticket), (2, 1, 0, 0));
        assert_eq!(mix.cards, [0, 3, 0, 0, 0]);
        assert!(mix.parse_scenarios("fly=1").is_err());
        assert!(mix.parse_cards("approved=0").is_err());
        Ok(())
    }
}
