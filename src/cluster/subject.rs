//! Subjects of the event stream: where a shop's events are published, and which partition
//! the server files them under. Pure functions, so a test can check them against the server.
//!
//! A publisher (`kefu publish`, a platform bridge) sends an event to
//! `kefu.events.<token>`, the token naming the shop. The stream's subject transform
//! (`partition()`, [`transform_destination`]) files it as `kefu.p.<N>.<token>`, N being the
//! FNV-1a hash of the token modulo the number of partitions: the publisher does not need
//! to know how many partitions there are, and every event of a shop lands in one partition,
//! in order.

/// Subjects publishers send to (one token: the shop).
pub const EVENTS_SUBJECTS: &str = "kefu.events.*";

/// The stored subject of partition `n`'s events (a consumer's filter).
pub fn partition_filter(n: u32) -> String {
    format!("kefu.p.{n}.*")
}

/// The subject a shop's events are published to.
pub fn event_subject(shop: &str) -> String {
    format!("kefu.events.{}", shop_token(shop))
}

/// The subject token naming a shop: the shop itself when it is letters, digits and `-`
/// only (most shop ids), otherwise `_` and the hex of its UTF-8 bytes, since `.`, `*`, `>`
/// and white space cannot stand in a token (and `_` starts no plain token, so the two
/// forms never collide).
pub fn shop_token(shop: &str) -> String {
    if !shop.is_empty() && shop.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return shop.to_string();
    }
    let mut token = String::with_capacity(1 + 2 * shop.len());
    token.push('_');
    for b in shop.bytes() {
        token.push_str(&format!("{b:02x}"));
    }
    token
}

/// The stream's subject transform destination for `partitions` partitions.
pub fn transform_destination(partitions: u32) -> String {
    format!("kefu.p.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}")
}

/// The number of partitions a transform destination made by [`transform_destination`]
/// holds, if it is one.
pub fn partitions_of(destination: &str) -> Option<u32> {
    let rest = destination.strip_prefix("kefu.p.{{partition(")?;
    let (n, rest) = rest.split_once(",1)}}")?;
    (rest == ".{{wildcard(1)}}").then_some(())?;
    n.parse().ok().filter(|&n| n > 0)
}

/// The partition a shop's events land in with `partitions` partitions: what the server's
/// `partition()` computes, FNV-1a (32 bit) over the token, modulo the count.
pub fn partition_of(shop: &str, partitions: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in shop_token(shop).bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % partitions.max(1)
}

/// The partition a stored subject `kefu.p.<N>.<token>` belongs to.
pub fn partition_in(subject: &str) -> Option<u32> {
    let rest = subject.strip_prefix("kefu.p.")?;
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let cases = [
            ("tmall-demo", "tmall-demo"),
            ("Shop42", "Shop42"),
            ("a.b", "_612e62"),
            ("小店", "_e5b08fe5ba97"),
            ("", "_"),
            ("_x", "_5f78"),
            ("a b*>", "_6120622a3e"),
        ];
        for (shop, token) in cases {
            assert_eq!(shop_token(shop), token, "{shop:?}");
        }
        assert_eq!(event_subject("a.b"), "kefu.events._612e62");
    }

    #[test]
    fn transform_round_trip() {
        assert_eq!(transform_destination(8), "kefu.p.{{partition(8,1)}}.{{wildcard(1)}}");
        for p in [1, 8, 64, 1000] {
            assert_eq!(partitions_of(&transform_destination(p)), Some(p));
        }
        assert_eq!(partitions_of("kefu.p.{{partition(0,1)}}.{{wildcard(1)}}"), None);
        assert_eq!(partitions_of("kefu.x.{{partition(8,1)}}.{{wildcard(1)}}"), None);
        assert_eq!(partition_in("kefu.p.7.shop"), Some(7));
        assert_eq!(partition_in("kefu.events.shop"), None);
    }

    #[test]
    fn fnv1a_reference_values() {
        // FNV-1a 32 of "a" is 0xe40c292c, of "foobar" 0xbf9cf968 (the published test vectors).
        assert_eq!(partition_of("a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition_of("foobar", u32::MAX), 0xbf9c_f968);
        assert!((0..500).all(|i| partition_of(&format!("shop{i}"), 8) < 8));
        assert_eq!(partition_of("x", 0), 0);
    }
}
