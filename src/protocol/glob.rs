//! Redis's glob-style patterns over byte strings (`KEYS`, `SCAN … MATCH`): `*` any run of
//! bytes, `?` one byte, `[abc]`, `[^abc]` and `[a-z]` one byte of (not of) a set, `\x`
//! the byte `x` itself. Keys are bytes, not paths or text, which the glob crates assume.

/// Whether `s` matches `pattern`.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // After a `*`: where the pattern goes on, and the byte the star's run ends before.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                while p < pattern.len() && pattern[p] == b'*' {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, i));
                continue;
            }
            if let Some(next) = one(pattern, p, s[i]) {
                p = next;
                i += 1;
                continue;
            }
        }
        // A mismatch: the last star takes one more byte, or nothing matches.
        let Some((after, from)) = star else {
            return false;
        };
        p = after;
        i = from + 1;
        star = Some((after, from + 1));
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether the pattern element at `p` matches the byte `c`: the index after it if so.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'[' => class(pattern, p + 1, c),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        x => (x == c).then_some(p + 1),
    }
}

/// A `[…]` set whose body starts at `p`; an unterminated one runs to the pattern's end.
fn class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let len = pattern.len();
    let negate = p < len && pattern[p] == b'^';
    if negate {
        p += 1;
    }
    let mut hit = false;
    while p < len {
        match pattern[p] {
            b']' => {
                p += 1;
                break;
            }
            b'\\' if p + 1 < len => {
                hit |= pattern[p + 1] == c;
                p += 2;
            }
            lo if p + 2 < len && pattern[p + 1] == b'-' => {
                let hi = pattern[p + 2];
                hit |= (lo.min(hi)..=lo.max(hi)).contains(&c);
                p += 3;
            }
            x => {
                hit |= x == c;
                p += 1;
            }
        }
    }
    (hit != negate).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_documented_patterns() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes());
        for s in ["hello", "hallo", "hxllo"] {
            assert!(m("h?llo", s));
        }
        for s in ["hllo", "heeeello", "hello"] {
            assert!(m("h*llo", s), "{s}");
        }
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hallo") && m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"), "a reversed range");
        assert!(m("h\\*llo", "h*llo") && !m("h\\*llo", "hello"));
        assert!(m("[\\]]", "]") && m("[a\\-z]", "-") && !m("[a\\-z]", "b"));
    }

    #[test]
    fn stars_anywhere_and_edges() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes());
        assert!(m("*", "") && m("*", "anything") && m("**", "x"));
        assert!(m("", "") && !m("", "x") && !m("x", ""));
        assert!(m("a*b*c", "aXXbYYc") && m("a*b*c", "abc") && !m("a*b*c", "aXXbYY"));
        assert!(m("*:cart", "{u7}:cart") && !m("*:cart", "{u7}:carts"));
        assert!(m("a*a*a", "aaaa") && !m("a*a*a", "aa"));
        assert!(m("user:[0-9]*", "user:7x") && !m("user:[0-9]*", "user:x7"));
        assert!(m("[abc", "b"), "an unterminated set runs to the end");
        assert!(m("x\\", "x\\"), "a trailing backslash is itself");
        assert!(matches(b"\xff*", b"\xff\x00\x01"), "bytes, not text");
    }
}
