//! URL policy: which URLs the client may fetch, and how URLs are shown in logs and errors.
//!
//! The host rule of the client's module docs lives here and only here; nothing in this module
//! does I/O.

use url::Url;

use super::ClientError;

/// Hosts whose URLs may be mapped onto a different configured base (see the module docs).
pub(super) const OFFICIAL_HOSTS: &[&str] = &["www.federalregister.gov", "federalregister.gov"];

/// Checks the configured base and reduces it to what requests are built from.
pub(super) fn normalise_base(base: &Url) -> Result<Url, ClientError> {
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(ClientError::Config(format!(
            "base_url must be an http(s) URL with a host, got {}",
            base.origin().ascii_serialization()
        )));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(ClientError::Config(
            "base_url must not carry credentials".into(),
        ));
    }
    let mut out = base.clone();
    out.set_query(None);
    out.set_fragment(None);
    // Without the trailing slash, joining "api/v1/..." would replace the last segment.
    if !out.path().ends_with('/') {
        let path = format!("{}/", out.path());
        out.set_path(&path);
    }
    Ok(out)
}

/// Applies the host rule of the module docs to a URL found in a response: resolves `raw`
/// against `relative_to` and returns a URL on `base`'s origin, or refuses it.
pub(super) fn resolve_on_base(
    base: &Url,
    raw: &str,
    relative_to: &Url,
) -> Result<Url, ClientError> {
    let mut url = relative_to
        .join(raw.trim())
        .map_err(|e| ClientError::Decode {
            url: loggable(relative_to),
            message: format!("a URL in the response does not parse: {e}"),
        })?;
    let allowed = base.origin().ascii_serialization();
    let refuse = |url: &Url| ClientError::ForeignHost {
        url: redacted(url),
        allowed: allowed.clone(),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(&url));
    }
    // Credentials in a response URL are never sent anywhere.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(&url));
    }
    url.set_fragment(None);
    if url.origin() == base.origin() {
        return Ok(url);
    }
    if !is_official(&url) {
        return Err(refuse(&url));
    }
    let mut mapped = base.clone();
    let path = format!(
        "{}{}",
        base.path().trim_end_matches('/'),
        if url.path().starts_with('/') {
            url.path().to_owned()
        } else {
            format!("/{}", url.path())
        }
    );
    mapped.set_path(&path);
    mapped.set_query(url.query());
    Ok(mapped)
}

pub(super) fn is_official(url: &Url) -> bool {
    let default_port = matches!(
        (url.scheme(), url.port_or_known_default()),
        ("https", Some(443)) | ("http", Some(80))
    );
    default_port
        && url
            .host_str()
            .is_some_and(|h| OFFICIAL_HOSTS.iter().any(|o| h.eq_ignore_ascii_case(o)))
}

/// Path and query only: the form in which URLs reach logs and error messages.
pub(super) fn loggable(url: &Url) -> String {
    match url.query() {
        // A search asks for a dozen `fields[]`: the start of the query says which request it
        // was, the rest would only make every log line and error hundreds of characters long.
        Some(q) if q.len() > LOGGED_QUERY_CHARS => {
            let cut = (0..=LOGGED_QUERY_CHARS)
                .rev()
                .find(|i| q.is_char_boundary(*i))
                .unwrap_or(0);
            format!(
                "{}?{}… ({} more bytes)",
                url.path(),
                &q[..cut],
                q.len() - cut
            )
        }
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_owned(),
    }
}

/// How much of a query a log line or error shows.
const LOGGED_QUERY_CHARS: usize = 80;

/// A foreign URL for an error message: whose host it was matters, its query does not.
pub(super) fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{}:{}{}", url.scheme(), host, port, url.path()),
        None => format!("{}://{}{}", url.scheme(), host, url.path()),
    }
}
