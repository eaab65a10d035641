//! Feeds arbitrary text to the callback XML parsers; any panic is a bug.

#![no_main]

use kefu::wechat::{parse, parse_envelope, parse_fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_fields(xml);
    let _ = parse_envelope(xml);
    if let Ok(inbound) = parse(xml) {
        // Accessors must not panic either.
        let _ = (
            inbound.msg_type(),
            inbound.event_name(),
            inbound.msg_id(),
            inbound.text(),
        );
    }
});
