//! The closed vocabulary of amounts a reconciliation's bridge line may hold
//! (`holds:` in YAML), and the ten disjoint parts each is made of; how the
//! lines that hold them are checked and valued is `catalog::lines`.

/// The disjoint parts every amount of the vocabulary is made of, for a
/// period P ("P's deals" are the deals counted in B).
pub const PARTS: [&str; 10] = [
    "bookings of P's deals that have revenue lines",
    "bookings of P's deals without revenue lines",
    "amount differences of P's deals",
    "lines of P's deals in accounting periods before P",
    "lines of P's deals in accounting periods after P",
    "lines of P's deals in P not yet recognized",
    "lines of P's deals recognized in P",
    "lines recognized in P of counted deals won before P",
    "lines recognized in P of counted deals won after P",
    "lines recognized in P of no counted deal",
];

/// An amount a bridge line may hold: the closed vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Amount {
    Bookings,
    LinesAfterPeriod,
    LinesBeforePeriod,
    LinesInPeriodNotRecognized,
    BookingsWithoutLines,
    AmountDifference,
    FxDifference,
    RecognizedOfDealsWonBeforePeriod,
    RecognizedOfDealsWonAfterPeriod,
    RecognizedWithoutCountedDeal,
    RecognizedRevenue,
}

/// Every amount, its name in YAML, what it is, and its parts.
pub(crate) const VOCABULARY: [(Amount, &str, &str, [i32; 10]); 11] = [
    (
        Amount::Bookings,
        "bookings",
        "B: the bookings of P's deals",
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    ),
    (
        Amount::LinesAfterPeriod,
        "lines_after_period",
        "Σ lines of P's deals in accounting periods after P",
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    ),
    (
        Amount::LinesBeforePeriod,
        "lines_before_period",
        "Σ lines of P's deals in accounting periods before P",
        [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    ),
    (
        Amount::LinesInPeriodNotRecognized,
        "lines_in_period_not_recognized",
        "Σ lines of P's deals in P not yet recognized",
        [0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    ),
    (
        Amount::BookingsWithoutLines,
        "bookings_without_lines",
        "Σ bookings of P's deals with no revenue lines at all",
        [0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    ),
    (
        Amount::AmountDifference,
        "amount_difference",
        "Σ per deal of P with lines of round((Σ line transaction amount − deal amount) / booking rate, 2)",
        [0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    ),
    (
        Amount::FxDifference,
        "fx_difference",
        "Σ per deal of P with lines of (Σ line amount − booking − amount difference)",
        // The deal's whole schedule (before, after, in P not yet
        // recognized, recognized in P) less its booking and amount difference.
        [-1, 0, -1, 1, 1, 1, 1, 0, 0, 0],
    ),
    (
        Amount::RecognizedOfDealsWonBeforePeriod,
        "recognized_of_deals_won_before_period",
        "Σ lines recognized in P of counted deals won before P",
        [0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
    ),
    (
        Amount::RecognizedOfDealsWonAfterPeriod,
        "recognized_of_deals_won_after_period",
        "Σ lines recognized in P of counted deals won after P",
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
    ),
    (
        Amount::RecognizedWithoutCountedDeal,
        "recognized_without_counted_deal",
        "Σ lines recognized in P of no counted deal (no link, unknown deal, excluded deal)",
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ),
    (
        Amount::RecognizedRevenue,
        "recognized_revenue",
        "R: the revenue lines recognized in P",
        [0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
    ),
];

impl Amount {
    fn entry(self) -> &'static (Amount, &'static str, &'static str, [i32; 10]) {
        VOCABULARY
            .iter()
            .find(|e| e.0 == self)
            .expect("every amount is in the vocabulary")
    }

    /// The amount's name in YAML (and in the plans' category column).
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    pub fn meaning(self) -> &'static str {
        self.entry().2
    }

    pub(crate) fn parts(self) -> [i32; 10] {
        self.entry().3
    }

    pub fn from_name(name: &str) -> Option<Amount> {
        VOCABULARY.iter().find(|e| e.1 == name).map(|e| e.0)
    }

    pub fn names() -> Vec<&'static str> {
        VOCABULARY.iter().map(|e| e.1).collect()
    }
}
