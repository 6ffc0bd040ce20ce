//! Kafka's `ssl.principal.mapping.rules`: how the subject of a client certificate (its
//! X.500 name in RFC 2253 form, `CN=alice,OU=eng,O=Example`) becomes the name in the
//! principal `User:<name>` (Kafka's `SslPrincipalMapper`, KIP-371).
//!
//! The rules are tried in order; the first that applies gives the name:
//! - `DEFAULT`: the whole name, unchanged;
//! - `RULE:pattern/replacement/` with an optional `L` or `U` after the last `/`: when
//!   the pattern matches the whole name, the replacement with `$1`, `$2`... taken from
//!   the pattern's groups, lower- or upper-cased by `L` or `U`. `\/` is a `/` inside
//!   the pattern or the replacement.
//!
//! A name no rule applies to is refused (the connection is closed, as in Kafka).

use regex::Regex;

/// The parsed rules; the default is `DEFAULT` alone.
#[derive(Clone, Debug)]
pub struct PrincipalRules(Vec<Rule>);

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Pattern {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl Default for PrincipalRules {
    fn default() -> Self {
        PrincipalRules(vec![Rule::Default])
    }
}

impl PrincipalRules {
    /// Parse a comma-separated list of rules (`DEFAULT`, `RULE:p/r/[LU]`).
    pub fn parse(spec: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = spec.trim_start();
        while !rest.is_empty() {
            let (rule, after) = parse_rule(rest)?;
            rules.push(rule);
            rest = after.trim_start();
            if let Some(more) = rest.strip_prefix(',') {
                rest = more.trim_start();
            } else if !rest.is_empty() {
                return Err(format!(
                    "ssl_principal_mapping_rules: unexpected {rest:?} after a rule"
                ));
            }
        }
        if rules.is_empty() {
            return Err("ssl_principal_mapping_rules: no rule in it".into());
        }
        Ok(PrincipalRules(rules))
    }

    /// The principal's name for the certificate subject `dn`, or None: no rule applies.
    pub fn name(&self, dn: &str) -> Option<String> {
        self.0.iter().find_map(|rule| rule.apply(dn))
    }
}

/// One rule at the start of `s`, and what follows it.
fn parse_rule(s: &str) -> Result<(Rule, &str), String> {
    if let Some(rest) = s.strip_prefix("DEFAULT") {
        return Ok((Rule::Default, rest));
    }
    let bad = || format!("ssl_principal_mapping_rules: invalid rule at {s:?}");
    let body = s.strip_prefix("RULE:").ok_or_else(bad)?;
    let (pattern, rest) = until_slash(body).ok_or_else(bad)?;
    let (replacement, rest) = until_slash(rest).ok_or_else(bad)?;
    let (case, rest) = match rest.as_bytes().first() {
        Some(b'L') => (Case::Lower, &rest[1..]),
        Some(b'U') => (Case::Upper, &rest[1..]),
        _ => (Case::Keep, rest),
    };
    let pattern = Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("ssl_principal_mapping_rules: pattern {pattern:?}: {e}"))?;
    let rule = Rule::Pattern {
        pattern,
        replacement,
        case,
    };
    Ok((rule, rest))
}

/// The text up to the first `/` not escaped as `\/` (the escape removed), and what
/// follows that `/`; None without one. Other escapes are kept for the regex.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, next)) => {
                    out.push('\\');
                    out.push(next);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

impl Rule {
    fn apply(&self, dn: &str) -> Option<String> {
        let Rule::Pattern {
            pattern,
            replacement,
            case,
        } = self
        else {
            return Some(dn.to_string());
        };
        let groups = pattern.captures(dn)?;
        let name = expand(replacement, &groups);
        Some(match case {
            Case::Keep => name,
            Case::Lower => name.to_lowercase(),
            Case::Upper => name.to_uppercase(),
        })
    }
}

/// `replacement` with each `$N` the text of group N (empty when it did not take part)
/// and `\x` the character x, as Java's `Matcher.replaceAll` reads a replacement.
fn expand(replacement: &str, groups: &regex::Captures) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                // Java takes further digits only while the group exists.
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    let next = n * 10 + d as usize;
                    if n > 0 && next >= groups.len() {
                        break;
                    }
                    n = next;
                    chars.next();
                }
                out.push_str(groups.get(n).map_or("", |m| m.as_str()));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::principal::PrincipalRules;

    const DN: &str = "CN=alice,OU=ServiceUsers,O=Example,C=US";

    #[test]
    fn the_default_rule_is_the_whole_name() {
        assert_eq!(PrincipalRules::default().name(DN).as_deref(), Some(DN));
        let rules = PrincipalRules::parse("DEFAULT").unwrap();
        assert_eq!(rules.name(DN).as_deref(), Some(DN));
    }

    #[test]
    fn the_first_rule_that_matches_the_whole_name_wins() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=Admins.*$/admin-$1/, RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules.name(DN).as_deref(),
            Some("alice@serviceusers"),
            "the first rule does not match, the second does"
        );
        assert_eq!(
            rules.name("CN=bob,OU=Admins,O=Example").as_deref(),
            Some("admin-bob")
        );
        assert_eq!(rules.name("O=Nobody").as_deref(), Some("O=Nobody"));
    }

    #[test]
    fn a_partial_match_does_not_apply_and_no_rule_refuses_the_name() {
        let rules = PrincipalRules::parse("RULE:CN=(\\w+)/$1/U").unwrap();
        assert_eq!(rules.name("CN=carol").as_deref(), Some("CAROL"));
        assert_eq!(
            rules.name(DN),
            None,
            "the pattern must match the whole name"
        );
    }

    #[test]
    fn escaped_slashes_and_backslashes_are_literal() {
        let rules = PrincipalRules::parse(r"RULE:^CN=([^,]*),O=(.*)$/\/$2\/$1\$/").unwrap();
        assert_eq!(
            rules.name("CN=a,O=b/c").as_deref(),
            Some("/b/c/a$"),
            "\\/ is a slash and \\$ a dollar in the replacement"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for bad in [
            "",
            "RULE:CN=(.*)",
            "RULE:CN=(.*)/$1",
            "NOPE",
            "DEFAULT x",
            "RULE:(/$1/",
        ] {
            let e = PrincipalRules::parse(bad).unwrap_err();
            assert!(e.starts_with("ssl_principal_mapping_rules"), "{bad:?}: {e}");
        }
    }
}
