//! The request-head parser (httparse plus the interpretation of method,
//! target and header fields) on arbitrary bytes. A complete head lies
//! within the input and parses the same on its own; any shorter prefix of
//! it is incomplete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ustack_http::fuzzing::parse_head;

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let max_headers = usize::from(first);
    if let Ok(Some((len, accepted))) = parse_head(data, max_headers) {
        assert!(len <= data.len() && len > 0);
        assert_eq!(
            parse_head(&data[..len], max_headers),
            Ok(Some((len, accepted)))
        );
        let cut = usize::from(data[0]) % len;
        assert_eq!(
            parse_head(&data[..cut], max_headers),
            Ok(None),
            "prefix of {cut} bytes"
        );
    }
});
