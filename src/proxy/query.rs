//! Go's `url.ParseQuery` rules for the few params the proxy reads itself (`file`, `url`, `key`,
//! `sign`): pairs split on `&`, pairs containing `;` or a bad `%` escape dropped, `+` is a space,
//! the first value wins.

/// Decoded `(name, value)` pairs in request order.
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((unescape(k)?, unescape(v)?))
        })
        .collect()
}

/// The first value of `name`, if present.
pub fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Go's `QueryUnescape`: `+` → space; `%XX` must be two hex digits. Invalid UTF-8 is kept
/// lossily (Go keeps raw bytes).
pub fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (*bytes.get(i + 1)? as char).to_digit(16)?;
                let lo = (*bytes.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_rules() {
        let p = pairs("a=1&a=2&b=x+y&c=%zz&d;e=1&url=http%3A%2F%2Fh%2Fa.jpg&e");
        assert_eq!(first(&p, "a"), Some("1"));
        assert_eq!(first(&p, "b"), Some("x y"));
        assert_eq!(first(&p, "c"), None);
        assert_eq!(first(&p, "d"), None);
        assert_eq!(first(&p, "url"), Some("http://h/a.jpg"));
        assert_eq!(first(&p, "e"), Some(""));
    }
}
