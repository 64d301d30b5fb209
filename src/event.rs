//! The `auth_events` table: the stored audit trail of authentication. Data only; no I/O happens
//! here. [`crate::audit`] builds events and records them through [`crate::db::record_event`],
//! the only function that names `auth_events::` columns.
//!
//! No column holds a password, a token or a hash: an event says who (user id, email), from where
//! (IP, user agent), what (kind) and how it ended (outcome), nothing more.

use diesel::prelude::*;

diesel::table! {
    /// One row per authentication event. `kind` and `outcome` hold the names of
    /// [`crate::audit::AuthEventKind`] and [`crate::audit::AuthOutcome`]. `user_id` has no foreign
    /// key: the trail outlives the account and never blocks a change to `users`.
    auth_events (id) {
        id -> Integer,
        kind -> Text,
        user_id -> Nullable<Integer>,
        email -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        outcome -> Text,
        created_at -> Timestamp,
    }
}

/// The longest user agent kept, in characters; longer ones are cut at a character boundary.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// A new row of `auth_events`; the database fills in the id, and the DB layer the time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Insertable)]
#[diesel(table_name = auth_events)]
pub struct NewAuthEvent<'a> {
    pub kind: &'a str,
    pub user_id: Option<i32>,
    pub email: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub outcome: &'a str,
}

/// `text` cut to at most `max` characters, never inside a character.
pub fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("abc", 5), "abc");
        assert_eq!(truncate_chars("abcdef", 3), "abc");
        assert_eq!(truncate_chars("żółw", 2), "żó");
        assert_eq!(truncate_chars("", 0), "");
        let long = "é".repeat(MAX_USER_AGENT_CHARS + 10);
        assert_eq!(truncate_chars(&long, MAX_USER_AGENT_CHARS).chars().count(), MAX_USER_AGENT_CHARS);
    }
}
