//! The subject of a client certificate as RFC 2253 text, the form Kafka's principal
//! builder reads (Java's `X500Principal.getName()`): the relative distinguished names
//! last first, separated by `,`, the values of a multi-valued one by `+`; the usual
//! attribute types by their keywords (`CN`, `OU`, `O`, `L`, `ST`, `C`, `STREET`, `DC`,
//! `UID`), any other as its dotted OID with the value's DER in hex (`1.2.3=#0c02..`).

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AttributeTypeAndValue;

/// The subject of the DER certificate `der` in RFC 2253 form.
pub fn subject_name(der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("the client certificate cannot be parsed: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let values = rdn.iter().map(attribute).collect::<Result<Vec<_>, _>>()?;
        rdns.push(values.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// `KEYWORD=value` (escaped) or `OID=#hex`.
fn attribute(a: &AttributeTypeAndValue) -> Result<String, String> {
    let oid = a.attr_type().to_id_string();
    let text = keyword(&oid).and_then(|k| value_text(a).map(|v| (k, v)));
    Ok(match text {
        Some((keyword, value)) => format!("{keyword}={}", escape(&value)),
        None => format!("{oid}=#{}", hex_der(a)?),
    })
}

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The value as text: the ASN.1 string types a directory string may be.
fn value_text(a: &AttributeTypeAndValue) -> Option<String> {
    let value = a.attr_value();
    let bytes = value.as_bytes();
    match value.tag().0 {
        // UTF8String, NumericString, PrintableString, IA5String, VisibleString
        12 | 18 | 19 | 22 | 26 => std::str::from_utf8(bytes).ok().map(String::from),
        // TeletexString: read as Latin-1, as Java does
        20 => Some(bytes.iter().map(|&b| b as char).collect()),
        // BMPString: UTF-16 big-endian
        30 if bytes.len() % 2 == 0 => {
            let units = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

/// RFC 2253 section 2.4, with Java's set of special characters: a backslash before each
/// of `,=+<>#;"\`, before a leading space and before a trailing space.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        if edge_space || ",=+<>#;\"\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The value's DER encoding (tag, length, content) in lower-case hex.
fn hex_der(a: &AttributeTypeAndValue) -> Result<String, String> {
    use x509_parser::der_parser::asn1_rs::ToDer;
    let der = a
        .attr_value()
        .to_der_vec()
        .map_err(|e| format!("a subject attribute of the client certificate: {e}"))?;
    Ok(der.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_and_edge_spaces_are_escaped() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" lead and trail "), "\\ lead and trail\\ ");
        assert_eq!(escape("#1;\"q\"\\"), "\\#1\\;\\\"q\\\"\\\\");
    }

    #[test]
    fn a_garbage_certificate_is_an_error_not_a_panic() {
        assert!(subject_name(b"not a certificate").is_err());
        assert!(subject_name(&[]).is_err());
    }
}
