//! One HTTP/1.1 request to a real server process (the binary, not the local client), on a new
//! connection that the server closes after its answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A whole answer: its status, its head (status line and headers) and its body.
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .filter_map(|line| line.split_once(": "))
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// Sends `method path` with `form` as a urlencoded body to 127.0.0.1:`port`; `None` if the
/// connection failed or the answer was not HTTP.
pub fn request(port: u16, method: &str, path: &str, form: &str) -> Option<RawAnswer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    Some(RawAnswer { status, head: head.to_owned(), body: body.to_owned() })
}
