//! `kefu check`: validates every data file in `rules/` and `replies/` by the same path the
//! service loads them, and nothing else.

use std::path::Path;

use crate::rules::{DataError, response_time};

/// Every problem found in the rule and reply folders; empty when all files are valid.
pub fn check_all(rules: Option<&Path>, replies: Option<&Path>) -> Vec<DataError> {
    let mut errors = Vec::new();
    if let Err(e) = response_time::load(rules) {
        errors.push(e);
    }
    if let Err(e) = crate::alerts::config::load(rules) {
        errors.push(e);
    }
    errors.extend(crate::replies::check(rules, replies));
    if let Err(e) = crate::scoring::sheet::load(rules) {
        errors.push(e);
    }
    if let Some(dir) = rules {
        errors.extend(crate::scoring::sheet::check_examples(dir));
    }
    if let Err(mut e) = crate::guard::Guard::load(rules) {
        errors.append(&mut e);
    }
    errors
}
