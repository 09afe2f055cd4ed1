//! Request signing exactly as pydatahub 2.29.0 does it (`datahub/auth/aliyun_account.py`):
//!
//! ```text
//! METHOD \n Content-Type \n Date {\n x-datahub-name:value, sorted by lower-cased name} \n path[?canonical query]
//! Authorization: DATAHUB <accessId>:base64(HMAC-SHA1(accessKey, canonical))
//! ```
//! The path and query are percent-decoded; the query is sorted by key only (stable), `k=v`,
//! or `k` when the value is empty.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// HMAC-SHA1 (RFC 2104). Written out because it is a few lines over `sha1`.
pub fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `base64(HMAC-SHA1(key, message))`, the signature field of the `Authorization` header.
pub fn signature(access_key: &str, canonical: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha1(access_key.as_bytes(), canonical.as_bytes()))
}

/// Percent-decodes like Python's `unquote` (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query part of the canonical string (`parse_qsl(keep_blank_values=True)`, sorted by key).
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().map(|(k, v)| if v.is_empty() { k } else { format!("{k}={v}") }).collect::<Vec<_>>().join("&")
}

/// Builds the canonical string. `headers` are all request headers (any case); only
/// `x-datahub-*` ones are used.
pub fn canonical_string<'a>(
    method: &str,
    content_type: &str,
    date: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    path: &str,
    query: Option<&str>,
) -> String {
    let mut dh: Vec<(String, &str)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| k.starts_with("x-datahub-"))
        .collect();
    dh.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = format!("{method}\n{content_type}\n{date}");
    for (k, v) in dh {
        s.push('\n');
        s.push_str(&k);
        s.push(':');
        s.push_str(v);
    }
    s.push('\n');
    s.push_str(&percent_decode(path));
    let q = query.map(canonical_query).unwrap_or_default();
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q);
    }
    s
}

/// The `Authorization` header value.
pub fn authorization(access_id: &str, access_key: &str, canonical: &str) -> String {
    format!("DATAHUB {access_id}:{}", signature(access_key, canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

    fn auth(method: &str, ct: &str, headers: &[(&str, &str)], path: &str, query: Option<&str>) -> String {
        authorization("testid", "testkey", &canonical_string(method, ct, DATE, headers.iter().copied(), path, query))
    }

    #[test]
    fn primitive() {
        assert_eq!(signature("testkey", "hello"), "t1oqOGG3EI7rDmAiWGo3fNkU6XU=");
        // RFC 2202 test case 6: a key longer than the block is hashed first.
        let long = [0xaau8; 80];
        let mac = hmac_sha1(&long, b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(mac.iter().map(|b| format!("{b:02x}")).collect::<String>(), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    }

    // §3.1 worked examples, computed by pydatahub 2.29.0 itself.
    #[test]
    fn example_a_pb_get_records() {
        let h = [("x-datahub-client-version", "1.1"), ("x-datahub-request-action", "sub"), ("User-Agent", "x")];
        let c = canonical_string("POST", "application/x-protobuf", DATE, h.iter().copied(), "/projects/test_project/topics/test_topic/shards/0", None);
        assert_eq!(c, "POST\napplication/x-protobuf\nMon, 01 Jan 2024 00:00:00 GMT\nx-datahub-client-version:1.1\nx-datahub-request-action:sub\n/projects/test_project/topics/test_topic/shards/0");
        assert_eq!(auth("POST", "application/x-protobuf", &h, "/projects/test_project/topics/test_topic/shards/0", None), "DATAHUB testid:30Ik0NipAAaQeKKrGhaodX1pG7o=");
    }

    #[test]
    fn example_b_list_project() {
        assert_eq!(auth("GET", "application/json", &[("x-datahub-client-version", "1.1")], "/projects", None), "DATAHUB testid:eSrsyu7LnZxCVMSySjvZOcjurik=");
    }

    #[test]
    fn example_c_query_and_token() {
        let h = [("x-datahub-client-version", "1.1"), ("x-datahub-security-token", "tok")];
        assert_eq!(auth("GET", "application/json", &h, "/projects/p1/topics/t1/connectors", Some("mode=id")), "DATAHUB testid:QBKhvNF3zbOI3XKAAuGbAptbnz0=");
    }

    #[test]
    fn example_d_header_and_query_sorting() {
        let h = [("X-Datahub-Zeta", "Z"), ("x-datahub-client-version", "1.1"), ("x-datahub-content-raw-size", "1255")];
        let path = "/projects/p1/topics/t1/connectors/c1";
        let c = canonical_string("GET", "application/json", DATE, h.iter().copied(), path, Some("z=9&donetime&a=1"));
        assert_eq!(c, "GET\napplication/json\nMon, 01 Jan 2024 00:00:00 GMT\nx-datahub-client-version:1.1\nx-datahub-content-raw-size:1255\nx-datahub-zeta:Z\n/projects/p1/topics/t1/connectors/c1?a=1&donetime&z=9");
        assert_eq!(auth("GET", "application/json", &h, path, Some("z=9&donetime&a=1")), "DATAHUB testid:Yr5IAUkSyfwKmRds0RWD4uVDpQo=");
    }

    #[test]
    fn example_e_put_offsets() {
        let path = "/projects/test_project/topics/test_topic/subscriptions/1700000000000abcd/offsets";
        assert_eq!(auth("PUT", "application/json", &[("x-datahub-client-version", "1.1")], path, None), "DATAHUB testid:sWhwcWLSQFdNBCr2foVjdadNvXE=");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b/%zz/%4"), "/a b/%zz/%4");
    }
}
