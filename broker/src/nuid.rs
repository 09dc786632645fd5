//! Unique ids in the shape of nats-server's NUIDs: 22 random base-62
//! characters. Clients and tools only compare them.

/// A new id.
pub fn next() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
