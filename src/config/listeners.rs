//! Listeners as Kafka configures them: `listeners` (`NAME://HOST:PORT,...`),
//! `advertised_listeners` (the same form, by name) and
//! `listener_security_protocol_map` (`NAME:PROTOCOL,...`; a listener named after a
//! protocol needs no entry). Without `listeners`, one PLAINTEXT listener on `listen`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How a listener's clients connect (Kafka's `security.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// One listener: what it binds, how clients connect to it, and what they are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub addr: SocketAddr,
    /// (host, port) given to clients that came in on this listener (Metadata,
    /// FindCoordinator, DescribeCluster).
    pub advertised: (String, i32),
}

/// The certificate files of the TLS listeners (PEM).
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA bundle that client certificates must chain to; set, clients must present one
    /// (mutual TLS, Kafka's `ssl.client.auth=required`).
    pub client_ca: Option<PathBuf>,
}

/// `NAME://HOST:PORT,...` as (name, host, port), in order.
fn parse_endpoints(key: &str, spec: &str) -> Result<Vec<(String, String, u16)>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, hostport) = item
            .split_once("://")
            .ok_or_else(|| format!("{key}: {item:?} is not NAME://HOST:PORT"))?;
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{key}: {item:?} is not NAME://HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{key}: bad port in {item:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() || host.is_empty() {
            return Err(format!("{key}: {item:?} is not NAME://HOST:PORT"));
        }
        let name = name.to_ascii_uppercase();
        if out.iter().any(|(n, _, _)| *n == name) {
            return Err(format!("{key}: listener {name} is named twice"));
        }
        out.push((name, host.to_string(), port));
    }
    if out.is_empty() {
        return Err(format!("{key} is empty"));
    }
    Ok(out)
}

/// `NAME:PROTOCOL,...`.
fn parse_protocol_map(spec: &str) -> Result<Vec<(String, SecurityProtocol)>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, proto) = item.split_once(':').ok_or_else(|| {
            format!("listener_security_protocol_map: {item:?} is not NAME:PROTOCOL")
        })?;
        let proto = SecurityProtocol::parse(proto).ok_or_else(|| {
            format!(
                "listener_security_protocol_map: unknown protocol {proto:?} \
                 (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
            )
        })?;
        out.push((name.to_ascii_uppercase(), proto));
    }
    Ok(out)
}

/// Resolve the three settings into listeners. `advertised_fallback` is the
/// single-listener `advertised_listener`, used for the first listener when
/// `advertised_listeners` does not name it.
pub fn resolve(
    listeners: &str,
    advertised: Option<&str>,
    protocol_map: Option<&str>,
) -> Result<Vec<Listener>, String> {
    let map = protocol_map.map(parse_protocol_map).transpose()?;
    let advertised = advertised
        .map(|a| parse_endpoints("advertised_listeners", a))
        .transpose()?
        .unwrap_or_default();
    let mut out = Vec::new();
    for (name, host, port) in parse_endpoints("listeners", listeners)? {
        let protocol = map
            .as_ref()
            .and_then(|m| m.iter().find(|(n, _)| *n == name).map(|(_, p)| *p))
            .or_else(|| SecurityProtocol::parse(&name))
            .ok_or_else(|| {
                format!("listener {name}: no protocol (name it in listener_security_protocol_map)")
            })?;
        let addr: SocketAddr = format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|_| format!("listener {name}: {host}:{port} is not an IP address and port"))?;
        let advertised = match advertised.iter().find(|(n, _, _)| *n == name) {
            Some((_, h, p)) => (h.clone(), i32::from(*p)),
            None if addr.ip().is_unspecified() => {
                return Err(format!(
                    "listener {name} binds an unspecified address: name it in advertised_listeners"
                ))
            }
            None => (addr.ip().to_string(), i32::from(port)),
        };
        out.push(Listener {
            name,
            protocol,
            addr,
            advertised,
        });
    }
    if let Some((n, _, _)) = advertised
        .iter()
        .find(|(n, _, _)| !out.iter().any(|l| l.name == *n))
    {
        return Err(format!(
            "advertised_listeners names {n}, which is not a listener"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::listeners::{resolve, SecurityProtocol};

    #[test]
    fn names_protocols_and_advertised_addresses() {
        let l = resolve(
            "PLAINTEXT://127.0.0.1:9092, secure://0.0.0.0:9093",
            Some("SECURE://broker.example:19093"),
            Some("SECURE:SASL_SSL"),
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].advertised, ("127.0.0.1".to_string(), 9092));
        assert_eq!(l[1].name, "SECURE");
        assert_eq!(l[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[1].advertised, ("broker.example".to_string(), 19093));
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (l, a, m) in [
            ("X://127.0.0.1:1", None, None),
            ("SSL://0.0.0.0:1", None, None),
            ("SSL://127.0.0.1:1,SSL://127.0.0.1:2", None, None),
            ("SSL://127.0.0.1:99999", None, None),
            ("SSL://127.0.0.1:1", Some("OTHER://h:1"), None),
            ("X://127.0.0.1:1", None, Some("X:TLS")),
            ("", None, None),
        ] {
            assert!(resolve(l, a, m).is_err(), "{l} {a:?} {m:?}");
        }
    }
}
