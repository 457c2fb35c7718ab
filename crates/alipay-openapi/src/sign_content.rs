//! The string Alipay signs: parameters sorted by key, `key=value` joined with `&`, values raw (not
//! URL-encoded), `sign` left out, and parameters with an empty value left out (the gateway's
//! documented rule; the Node SDK signs `key=` instead, which the gateway then rejects, so we never
//! send an empty value at all).

/// Build the request sign content from `(key, value)` pairs in any order.
pub fn sign_content<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    join_sorted(
        params
            .into_iter()
            .filter(|(k, v)| *k != "sign" && !v.is_empty()),
    )
}

/// The notification sign content: every field but `sign` and `sign_type` (or but `sign` only, when
/// `include_sign_type`), sorted, values exactly as form-decoded once. Empty values are kept, as the
/// SDKs keep them.
pub fn notify_sign_content<'a, I>(fields: I, include_sign_type: bool) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    join_sorted(
        fields
            .into_iter()
            .filter(|(k, _)| *k != "sign" && (include_sign_type || *k != "sign_type")),
    )
}

fn join_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.collect();
    // Byte order of the keys, as Alipay sorts (`String.compareTo` / `sort()` on ASCII keys).
    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let len = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(len);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_drops_sign_and_empty_values() {
        let s = sign_content([
            ("b", "2"),
            ("sign", "x"),
            ("a", "1"),
            ("empty", ""),
            ("A", "0"),
        ]);
        assert_eq!(s, "A=0&a=1&b=2");
    }

    #[test]
    fn notify_content_excludes_sign_type_unless_asked() {
        let f = [
            ("sign_type", "RSA2"),
            ("b", ""),
            ("a", "x y"),
            ("sign", "s"),
        ];
        assert_eq!(notify_sign_content(f, false), "a=x y&b=");
        assert_eq!(notify_sign_content(f, true), "a=x y&b=&sign_type=RSA2");
    }
}
