//! `TrustPolicy::check_cert_url` / `check_subscribe_url` on arbitrary strings: never panics, and
//! whatever is accepted is an `https://sns.<region>.amazonaws.com[.cn]/...` URL with no port,
//! userinfo, query (certificates) or fragment, whose path ends in `.pem` (certificates) or is `/`
//! with exactly the signed query (subscribe URLs). See `checks/sns_verify.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/sns_verify.rs"]
#[allow(dead_code)]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check_url_policy_bytes(data);
});
