//! `Envelope::parse` on arbitrary bytes; when it parses, `string_to_sign` must not panic and
//! must carry every signed value (see `checks/sns_verify.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/sns_verify.rs"]
#[allow(dead_code)]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check_envelope_bytes(data);
});
