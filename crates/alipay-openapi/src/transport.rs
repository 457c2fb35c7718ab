//! How a signed request reaches a gateway and its answer comes back: over HTTP(S) ([`HttpTransport`],
//! what [`crate::AlipayClient::new`] uses), or any other way a [`Transport`] knows, such as a
//! gateway running in the same process (the emulator's in-process gateway).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, ResponseError};

/// What [`Transport::post`] returns.
pub type PostFuture<'a> = Pin<Box<dyn Future<Output = Result<String, Error>> + Send + 'a>>;

/// Carries one signed request to the gateway.
///
/// The client signs before and verifies after; a transport only moves bytes. It never puts `url`
/// in an error: the URL carries the request's `sign`.
pub trait Transport: Send + Sync + fmt::Debug {
    /// POST `form` (`application/x-www-form-urlencoded;charset=utf-8`) to `url` and return the body
    /// of an HTTP 200 answer: [`Error::HttpStatus`] for any other status, [`Error::TooLarge`] for a
    /// body over `max_bytes`, [`Error::Transport`] for an answer cut off, and a body that is not
    /// UTF-8 as a malformed response. The client bounds the whole call by its timeout.
    fn post<'a>(&'a self, url: &'a str, form: String, max_bytes: usize) -> PostFuture<'a>;
}

/// HTTP(S) through `reqwest` (rustls, the platform's roots), no redirects.
#[derive(Debug)]
pub struct HttpTransport {
    connect_timeout: Duration,
    timeout: Duration,
    /// Built on the first request: building it loads the system's root certificates (several
    /// milliseconds and a few hundred KB), which a server that only lists tools or signs links
    /// never needs.
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl HttpTransport {
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        Self {
            connect_timeout,
            timeout,
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, Error> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .timeout(self.timeout)
                    .user_agent(concat!("alipay-openapi-rust/", env!("CARGO_PKG_VERSION")))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Transport(e.clone()))
    }

    async fn send(&self, url: &str, form: String, max_bytes: usize) -> Result<String, Error> {
        let map_err = |e: reqwest::Error| {
            // The URL carries the request's `sign`: it never goes into an error message.
            let e = e.without_url();
            if e.is_timeout() {
                Error::Timeout(self.timeout)
            } else if e.is_connect() {
                Error::Connect(error_chain(&e))
            } else {
                Error::Transport(error_chain(&e))
            }
        };
        let mut response = self
            .client()?
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(map_err)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(Error::HttpStatus(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > max_bytes)
        {
            return Err(Error::TooLarge(max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(map_err)? {
            if body.len() + chunk.len() > max_bytes {
                return Err(Error::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        utf8_body(body)
    }
}

impl Transport for HttpTransport {
    fn post<'a>(&'a self, url: &'a str, form: String, max_bytes: usize) -> PostFuture<'a> {
        Box::pin(self.send(url, form, max_bytes))
    }
}

/// A response body as text, or the malformed-response error every transport gives.
pub fn utf8_body(body: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(body)
        .map_err(|_| Error::Response(ResponseError::Malformed("the body is not UTF-8".into())))
}

/// The error and its causes on one line (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
