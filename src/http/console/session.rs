//! Who is using the console: the session cookie of a signed-in browser, resolved to the token
//! it was opened with, and the CSRF values that every form posts back.
//!
//! The cookie holds a random session id, never the API token, and is `HttpOnly`,
//! `SameSite=Strict`, `Path=/` (and `Secure` behind HTTPS). A form post counts only with the
//! session's CSRF value; the sign-in form, posted before there is a session, carries a
//! one-off value that must equal its own short-lived cookie. Neither the token nor a session
//! id is ever logged, put in a URL or shown in a page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use super::Console;
use crate::domain::Scope;
use crate::http::auth::Principal;
use crate::http::problem::Problem;
use crate::store::{ConsoleSession, SessionSecret};

/// The session cookie.
pub const SESSION_COOKIE: &str = "ew_session";
/// The sign-in form's one-off CSRF cookie, scoped to `/login`.
pub const LOGIN_COOKIE: &str = "ew_login";
/// How long a sign-in form may sit in a browser before it must be loaded again.
const LOGIN_FORM_SECONDS: i64 = 15 * 60;

/// A signed-in browser: who it is and the CSRF value its forms carry.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Principal,
    pub csrf_token: String,
    pub secret: SessionSecret,
}

impl SignedIn {
    /// Whether a posted form carries this session's CSRF value.
    pub fn check_csrf(&self, posted: &str) -> Result<(), Problem> {
        if same_secret(posted, &self.csrf_token) {
            Ok(())
        } else {
            Err(csrf_refused())
        }
    }

    /// Whether the session's token may do what needs `needed`.
    pub fn require(&self, needed: Scope) -> Result<(), Problem> {
        if self.principal.scope.allows(needed) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this needs a token of scope {needed} or above; you signed in with one of \
                 scope {}",
                self.principal.scope
            )))
        }
    }
}

/// 403 for a form post without the right CSRF value.
pub fn csrf_refused() -> Problem {
    Problem::forbidden(
        "the form's CSRF value is missing or does not belong to your session: reload the page \
         and submit it again",
    )
    .at("csrf")
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a request has no session.
#[derive(Debug)]
pub enum NotSignedIn {
    /// A page: the browser is sent to sign in, and back here afterwards.
    Page {
        next: String,
    },
    /// A form post or download without a session.
    Post,
    Store(crate::store::StoreError),
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::Page { next } => {
                let target = if next == "/" {
                    "/login".to_string()
                } else {
                    let mut query = url::form_urlencoded::Serializer::new(String::new());
                    query.append_pair("next", &next);
                    format!("/login?{}", query.finish())
                };
                Redirect::to(&target).into_response()
            }
            NotSignedIn::Post => {
                let mut p = Problem::unauthorized(
                    "sign in first: your console session ended or was never opened",
                );
                // A browser has no bearer token to offer; the answer is to sign in.
                p.challenge = None;
                p.at(SESSION_COOKIE).into_response()
            }
            NotSignedIn::Store(e) => Problem::internal(&e).into_response(),
        }
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

#[async_trait::async_trait]
impl FromRequestParts<Console> for SignedIn {
    type Rejection = NotSignedIn;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Console,
    ) -> Result<Self, Self::Rejection> {
        let missing = || {
            if parts.method == Method::GET || parts.method == Method::HEAD {
                NotSignedIn::Page {
                    next: parts
                        .uri
                        .path_and_query()
                        .map_or("/".to_string(), |p| p.as_str().to_string()),
                }
            } else {
                NotSignedIn::Post
            }
        };
        let Some(secret) =
            cookie_value(&parts.headers, SESSION_COOKIE).and_then(|v| SessionSecret::parse(&v))
        else {
            return Err(missing());
        };
        let session: ConsoleSession = console
            .store
            .console_session(&secret)
            .await
            .map_err(NotSignedIn::Store)?
            .ok_or_else(missing)?;
        Ok(SignedIn {
            principal: Principal {
                token_id: session.token_id,
                name: session.name,
                scope: session.scope,
            },
            csrf_token: session.csrf_token,
            secret,
        })
    }
}

/// A cookie as the console sets every one: `HttpOnly`, `SameSite=Strict`, `Secure` when the
/// console is served over HTTPS.
fn cookie_header(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_seconds: i64,
    secure: bool,
) -> HeaderValue {
    let c = Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(path)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build();
    HeaderValue::from_str(&c.to_string()).expect("hex values and fixed attributes are valid")
}

pub fn session_cookie(secret: &SessionSecret, max_age_seconds: i64, secure: bool) -> HeaderValue {
    cookie_header(
        SESSION_COOKIE,
        secret.expose().to_string(),
        "/",
        max_age_seconds,
        secure,
    )
}

pub fn session_cookie_removal(secure: bool) -> HeaderValue {
    cookie_header(SESSION_COOKIE, String::new(), "/", 0, secure)
}

pub fn login_cookie(nonce: &str, secure: bool) -> HeaderValue {
    cookie_header(
        LOGIN_COOKIE,
        nonce.to_string(),
        "/login",
        LOGIN_FORM_SECONDS,
        secure,
    )
}

pub fn login_cookie_removal(secure: bool) -> HeaderValue {
    cookie_header(LOGIN_COOKIE, String::new(), "/login", 0, secure)
}

/// A fresh one-off value for a sign-in form.
pub fn login_nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Where to go after signing in: a path of this console only, so that a crafted sign-in link
/// cannot send the browser to another site.
pub fn local_target(next: Option<&str>) -> String {
    match next.map(str::trim) {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.starts_with("/login")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(
            local_target(Some("/alerts?status=open")),
            "/alerts?status=open"
        );
        for hostile in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/login?next=/login",
            "javascript:alert(1)",
            "/alerts\r\nSet-Cookie: x=y",
            "",
        ] {
            assert_eq!(local_target(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(local_target(None), "/");
    }

    #[test]
    fn secrets_compare_only_when_equal_and_never_when_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_when_asked() {
        let secret = SessionSecret::parse(&"ab".repeat(32)).unwrap();
        let plain = session_cookie(&secret, 60, false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("ew_session=abab"), "{plain}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=60"] {
            assert!(plain.contains(attribute), "{attribute} in {plain}");
        }
        assert!(!plain.contains("Secure"));
        let secure = session_cookie(&secret, 60, true);
        assert!(secure.to_str().unwrap().contains("Secure"));
        let gone = session_cookie_removal(false);
        assert!(gone.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn a_cookie_is_found_among_several() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; ew_session=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(
            cookie_value(&headers, SESSION_COOKIE).as_deref(),
            Some("xyz")
        );
        assert_eq!(cookie_value(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie_value(&headers, "c"), None);
    }
}
