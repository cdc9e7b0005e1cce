//! Where the CLI's settings come from: flags, then the environment, then a
//! TOML config file, then defaults, each setting on its own.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use tokenrelay::{AdminClient, Error};

use crate::args::Global;

/// The server assumed when nothing says otherwise: `tokenrelay-server
/// serve`'s default address.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The config file's keys (every one optional; unknown keys are refused so
/// that a typo does not silently fall back to a default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    url: Option<String>,
    ws_url: Option<String>,
    api_key: Option<String>,
    org_id: Option<String>,
    ca_cert: Option<PathBuf>,
    allow_insecure: Option<bool>,
}

/// The settings a command runs with.
pub(crate) struct Settings {
    /// HTTP base URL.
    pub url: String,
    /// WebSocket URL.
    pub ws_url: String,
    /// The credential, if any (some commands need none).
    api_key: Option<String>,
    /// The org, if set explicitly.
    org: Option<String>,
    /// A CA certificate's PEM to trust (`--ca-cert`).
    ca_pem: Option<Vec<u8>>,
    /// `--allow-insecure`.
    allow_insecure: bool,
}

impl Settings {
    /// Resolves every setting: flag, else environment variable, else the
    /// config file, else the default.
    pub(crate) fn resolve(global: &Global) -> Result<Settings, Error> {
        let file = read_file(global.config.as_deref())?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = global
            .url
            .clone()
            .or_else(|| env("TOKENRELAY_URL"))
            .or(file.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let ws_url = global
            .ws_url
            .clone()
            .or_else(|| env("TOKENRELAY_WS_URL"))
            .or(file.ws_url)
            .map_or_else(|| ws_url_of(&url), Ok)?;
        let ca_pem = match global
            .ca_cert
            .clone()
            .or_else(|| env("TOKENRELAY_CA_CERT").map(PathBuf::from))
            .or(file.ca_cert)
        {
            Some(path) => Some(std::fs::read(&path).map_err(|e| Error::Config {
                message: format!("cannot read the CA certificate {}: {e}", path.display()),
            })?),
            None => None,
        };
        let allow_insecure = global.allow_insecure
            || env("TOKENRELAY_ALLOW_INSECURE").is_some_and(|v| v == "1" || v == "true")
            || file.allow_insecure == Some(true);
        Ok(Settings {
            ca_pem,
            allow_insecure,
            url,
            ws_url,
            api_key: global
                .api_key
                .clone()
                .or_else(|| env("TOKENRELAY_API_KEY"))
                .or(file.api_key),
            org: global
                .org
                .clone()
                .or_else(|| env("TOKENRELAY_ORG_ID"))
                .or(file.org_id),
        })
    }

    /// An admin client without a credential (register, log in).
    pub(crate) fn anonymous(&self) -> Result<AdminClient, Error> {
        self.admin_builder().build()
    }

    /// The TLS settings both clients use (`--ca-cert`, `--allow-insecure`;
    /// the proxy from the environment).
    fn network(&self) -> tokenrelay::NetworkOptions {
        tokenrelay::NetworkOptions::from_parts(
            self.ca_pem.as_ref(),
            self.allow_insecure,
            None,
            false,
        )
    }

    /// The admin client's builder with the URL and the TLS settings.
    fn admin_builder(&self) -> tokenrelay::AdminClientBuilder {
        AdminClient::builder()
            .base_url(&self.url)
            .network(self.network())
    }

    /// The WebSocket client's builder with the URL and the TLS settings.
    pub(crate) fn client_builder(&self) -> tokenrelay::ClientBuilder {
        tokenrelay::Client::builder(self.ws_url.clone()).network(self.network())
    }

    /// An admin client with the credential; a clear error without one.
    pub(crate) fn admin(&self) -> Result<AdminClient, Error> {
        let key = self.api_key.as_deref().ok_or_else(|| Error::Config {
            message: "no credential: set TOKENRELAY_API_KEY (an org key, a user access token or \
                      a user API key), api_key in the config file, or --api-key"
                .into(),
        })?;
        self.admin_builder().credential(key).build()
    }

    /// The org to act on: `--org`/`TOKENRELAY_ORG_ID`/`org_id`, else the
    /// `org_id` claim of an org key (the caller's own key, read without
    /// verifying it: the server checks it on every call), else the user's
    /// org from `GET /auth/me`.
    pub(crate) async fn org_id(&self, admin: &AdminClient) -> Result<String, Error> {
        if let Some(org) = &self.org {
            return Ok(org.clone());
        }
        if let Some(org) = self.api_key.as_deref().and_then(org_claim) {
            return Ok(org);
        }
        let me = admin.me().await?;
        me.org_id.ok_or_else(|| Error::Config {
            message: "cannot tell which org to act on: pass --org or set TOKENRELAY_ORG_ID".into(),
        })
    }
}

/// `ws(s)://host/ws` for an `http(s)://host` base URL.
fn ws_url_of(url: &str) -> Result<String, Error> {
    let base = url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/ws")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}/ws")
    } else {
        return Err(Error::Config {
            message: format!("the server URL must start with http:// or https://: {url}"),
        });
    };
    Ok(ws)
}

/// The `org_id` claim of an org key's JWT payload, when it is one.
fn org_claim(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    (claims["type"] == "org")
        .then(|| claims["org_id"].as_str().map(str::to_owned))
        .flatten()
}

/// The config file: `path` (from `--config`), else `TOKENRELAY_CONFIG`, else
/// `$XDG_CONFIG_HOME/tokenrelay/config.toml` or
/// `~/.config/tokenrelay/config.toml` if it exists. A file named explicitly
/// must exist.
fn read_file(path: Option<&Path>) -> Result<File, Error> {
    let named = path
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TOKENRELAY_CONFIG").map(PathBuf::from));
    let path = match named {
        Some(p) => p,
        None => match default_path() {
            Some(p) if p.exists() => p,
            _ => return Ok(File::default()),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
        message: format!("cannot read the config file {}: {e}", path.display()),
    })?;
    warn_if_readable_by_others(&path);
    toml::from_str(&text).map_err(|e| Error::Config {
        message: format!("the config file {}: {e}", path.display()),
    })
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("tokenrelay").join("config.toml"))
}

/// The file may hold a credential: say so when others can read it (as ssh
/// does for keys), without refusing to run.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: {} can be read by other users; it may hold a credential \
                     (chmod 600 it)",
                    path.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_url_follows_the_http_one() {
        assert_eq!(ws_url_of("http://h:1").unwrap(), "ws://h:1/ws");
        assert_eq!(ws_url_of("https://h/").unwrap(), "wss://h/ws");
        assert!(ws_url_of("h:1").is_err());
    }

    #[test]
    fn only_an_org_key_names_its_org() {
        let jwt = |claims: &str| {
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!("{}.{}.sig", e.encode("{}"), e.encode(claims))
        };
        assert_eq!(
            org_claim(&jwt(r#"{"type":"org","org_id":"o1"}"#)).as_deref(),
            Some("o1")
        );
        assert_eq!(org_claim(&jwt(r#"{"type":"user","org_id":"o1"}"#)), None);
        assert_eq!(org_claim("sk_live_abc"), None);
    }
}
