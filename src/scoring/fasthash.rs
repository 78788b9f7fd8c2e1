//! The scoring maps' hasher: their keys are our own ids and names, so SipHash's flood
//! resistance buys nothing, and it cost about a tenth of the scoring time.

/// A `HashMap` with rustc's Fx hasher.
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_stay_distinct() {
        let mut m: FastMap<String, u32> = FastMap::default();
        for i in 0..10_000u32 {
            m.insert(format!("tb{i:08}"), i);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get("tb00004242"), Some(&4242));
        assert_eq!(m.get("tb0000424"), None);
    }
}
