//! `domain::mapping::map_message` (and `parse_timestamp`, `bare_address`) on arbitrary strings.
//! See `checks/domain.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/domain.rs"]
#[allow(dead_code)]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check_message_bytes(data);
});
