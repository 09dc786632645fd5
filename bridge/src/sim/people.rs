//! Invented identities for simulated matches: provider-style ids (15
//! lower-case letters and digits) and player names.

use rand::rngs::StdRng;
use rand::Rng;

const FIRST: [&str; 8] = ["A.", "B.", "C.", "D.", "E.", "J.", "L.", "M."];
const SURNAMES: [&str; 12] = [
    "Silva",
    "Müller",
    "Rossi",
    "Dubois",
    "García",
    "Smith",
    "Nowak",
    "Jensen",
    "Kovač",
    "Okafor",
    "Haddad",
    "Lindqvist",
];

/// A provider-style id.
pub fn id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..15)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A player as incidents name one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    pub id: String,
    pub name: String,
}

impl Player {
    pub fn random(rng: &mut StdRng) -> Player {
        let name = format!(
            "{} {}",
            FIRST[rng.random_range(0..FIRST.len())],
            SURNAMES[rng.random_range(0..SURNAMES.len())]
        );
        Player { id: id(rng), name }
    }
}
