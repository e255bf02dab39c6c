//! Which web pages may open a WebSocket to this server or call its API.
//!
//! A browser sends `Origin` (RFC 6454 §7) with every WebSocket handshake
//! (RFC 6455 §4.1) and every cross-origin request; without a check, any
//! page a member visits could open a WebSocket to a LAN server and join its
//! channels (cross-site WebSocket hijacking). Allowed:
//!
//! * no `Origin` at all: not a browser (the desktop engine, `squawk-bot`);
//! * the server's own pages: the origin's host and port are the request's
//!   `Host` (a reverse proxy must pass `Host` through);
//! * the desktop app's web view: `tauri://localhost`,
//!   `http(s)://tauri.localhost`;
//! * the origins the operator lists in `allowed_origins` (`"*"`: any).
//!
//! `null` (a sandboxed frame, a `file:` page) and everything else are
//! refused with 403 `forbidden_origin`, before any upgrade. Pure: strings
//! in, a decision out.

/// Origins of the desktop app's web view (Tauri 2 on Linux and macOS, and
/// on Windows, over http and https).
const DESKTOP: [&str; 3] = [
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
];

/// The allow-list. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Operator-listed origins, lowercased, without a trailing `/`.
    extra: Vec<String>,
    any: bool,
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `host[:port]` with the scheme's default port removed, lowercased.
fn authority(scheme: &str, authority: &str) -> String {
    let a = authority.to_ascii_lowercase();
    let default = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => "",
    };
    match a.strip_suffix(default) {
        Some(host) if !default.is_empty() => host.to_string(),
        _ => a,
    }
}

impl Origins {
    /// An allow-list with the operator's `allowed_origins` (each
    /// `scheme://host[:port]`, or `"*"` for any origin).
    pub fn new(allowed: &[String]) -> Self {
        Self {
            any: allowed.iter().any(|o| o.trim() == "*"),
            extra: allowed
                .iter()
                .filter(|o| o.trim() != "*")
                .map(|o| normalize(o))
                .collect(),
        }
    }

    /// Whether a request with `origin` (its `Origin` header, if any) to
    /// `host` (its `Host` header) is allowed.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = normalize(origin);
        if self.any || DESKTOP.contains(&origin.as_str()) || self.extra.contains(&origin) {
            return true;
        }
        let (Some((scheme, rest)), Some(host)) = (origin.split_once("://"), host) else {
            return false; // `null`, or no Host to compare with
        };
        if !matches!(scheme, "http" | "https") || rest.contains('/') {
            return false;
        }
        authority(scheme, rest) == authority(scheme, host.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_browsers_the_servers_own_pages_and_the_desktop_app_are_allowed() {
        let o = Origins::new(&[]);
        assert!(o.allows(None, Some("10.0.0.5:7300")));
        assert!(o.allows(Some("http://10.0.0.5:7300"), Some("10.0.0.5:7300")));
        assert!(o.allows(Some("HTTPS://Talk.Example.org"), Some("talk.example.org")));
        assert!(o.allows(
            Some("https://talk.example.org"),
            Some("talk.example.org:443")
        ));
        assert!(o.allows(Some("http://talk.example.org:80"), Some("talk.example.org")));
        assert!(o.allows(Some("tauri://localhost"), Some("127.0.0.1:7300")));
        assert!(o.allows(Some("http://tauri.localhost"), Some("127.0.0.1:7300")));
    }

    #[test]
    fn foreign_pages_null_and_lookalikes_are_refused() {
        let o = Origins::new(&[]);
        assert!(!o.allows(Some("https://evil.example"), Some("10.0.0.5:7300")));
        assert!(!o.allows(Some("null"), Some("10.0.0.5:7300")));
        // Same host, another port: another origin (RFC 6454 §4).
        assert!(!o.allows(Some("http://10.0.0.5:8080"), Some("10.0.0.5:7300")));
        // Same host and port, another scheme's default port.
        assert!(!o.allows(Some("https://10.0.0.5"), Some("10.0.0.5:80")));
        assert!(!o.allows(
            Some("http://10.0.0.5:7300.evil.example"),
            Some("10.0.0.5:7300")
        ));
        assert!(!o.allows(Some("ftp://10.0.0.5:7300"), Some("10.0.0.5:7300")));
        assert!(!o.allows(Some("http://10.0.0.5:7300"), None));
    }

    #[test]
    fn the_operator_lists_more_origins_or_any() {
        let o = Origins::new(&["https://console.example.org/".into()]);
        assert!(o.allows(Some("https://console.example.org"), Some("10.0.0.5:7300")));
        assert!(!o.allows(Some("https://other.example.org"), Some("10.0.0.5:7300")));
        let any = Origins::new(&["*".into()]);
        assert!(any.allows(Some("https://other.example.org"), Some("10.0.0.5:7300")));
    }
}
