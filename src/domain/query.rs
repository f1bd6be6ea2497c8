//! What a request may ask for beyond a code: a page of a listing, a range of days.
//! Parsed once at the edge into types with private fields, so the service and the
//! stores never see raw query strings.

use chrono::{Datelike, Duration, NaiveDate};

use super::codes::{decode_canonical, encode};

/// Links one page holds when `limit` is not given.
pub const DEFAULT_PAGE: usize = 50;
/// The most links one page may hold.
pub const MAX_PAGE: usize = 1_000;
/// Longest range of days one request may ask for.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The range when none is given: the last 30 days, today included.
pub const DEFAULT_DAYS: i64 = 30;

/// Why a query parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("limit must be a whole number from 1 to {MAX_PAGE}")]
    Limit,
    #[error("cursor is not one this API gave out")]
    Cursor,
    #[error("{0} must be a date like 2026-01-31")]
    Day(&'static str),
    #[error("from is after to")]
    Reversed,
    #[error("a range covers at most {MAX_RANGE_DAYS} days")]
    TooLong,
}

/// How many links a page holds: 1 to [`MAX_PAGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(usize);

impl PageLimit {
    /// `limit` as given, or [`DEFAULT_PAGE`] when absent.
    ///
    /// # Errors
    /// [`QueryError::Limit`] for anything but a whole number in range.
    pub fn parse(text: Option<&str>) -> Result<Self, QueryError> {
        let Some(text) = text else {
            return Ok(Self(DEFAULT_PAGE));
        };
        text.parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .map(Self)
            .ok_or(QueryError::Limit)
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// Where the next page starts: the generated code of the last link of the previous one
/// (links older than it follow), as the number it spells; the service turns it into an
/// ID. Opaque to clients, and no more revealing than a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(u64);

impl Cursor {
    /// A cursor as this API gave it out.
    ///
    /// # Errors
    /// [`QueryError::Cursor`] for anything else.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        decode_canonical(text)
            .map(Self)
            .map_err(|_| QueryError::Cursor)
    }

    /// The cursor after the link whose generated code spells `number`.
    pub fn after(number: u64) -> Self {
        Self(number)
    }

    /// The number of the code the next page stays below.
    pub fn number(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&encode(self.0))
    }
}

/// A range of UTC days, `from` to `to` inclusive, at most [`MAX_RANGE_DAYS`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl DayRange {
    /// `from` and `to` as given; `to` defaults to `today`, `from` to [`DEFAULT_DAYS`]
    /// days ending at `to`.
    ///
    /// # Errors
    /// A date that does not parse, `from` after `to`, or a range that is too long.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, QueryError> {
        // Years 1 to 9999: every store can hold them (PostgreSQL's `date` cannot hold
        // all that chrono parses, such as -9999-01-01).
        let day = |name, text: &str| {
            text.parse::<NaiveDate>()
                .ok()
                .filter(|d| (1..=9999).contains(&d.year()))
                .ok_or(QueryError::Day(name))
        };
        let to = to.map(|t| day("to", t)).transpose()?.unwrap_or(today);
        let from = match from {
            Some(f) => day("from", f)?,
            None => to - Duration::days(DEFAULT_DAYS - 1),
        };
        Self::new(from, to)
    }

    /// The days from `from` to `to`, inclusive.
    ///
    /// # Errors
    /// `from` after `to`, or a range that is too long.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, QueryError> {
        if from > to {
            return Err(QueryError::Reversed);
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS {
            return Err(QueryError::TooLong);
        }
        Ok(Self { from, to })
    }

    pub fn from(self) -> NaiveDate {
        self.from
    }

    pub fn to(self) -> NaiveDate {
        self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_limit_is_a_whole_number_in_range_or_the_default() {
        assert_eq!(PageLimit::parse(None).unwrap().get(), DEFAULT_PAGE);
        assert_eq!(PageLimit::parse(Some("1000")).unwrap().get(), 1000);
        for bad in ["0", "1001", "x", "-1", "2.5", ""] {
            assert_eq!(PageLimit::parse(Some(bad)), Err(QueryError::Limit), "{bad}");
        }
    }

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        let number = 1 << 60;
        let text = Cursor::after(number).to_string();
        assert_eq!(Cursor::parse(&text).unwrap().number(), number);
        assert_eq!(Cursor::parse("!!"), Err(QueryError::Cursor));
        assert_eq!(Cursor::parse(&format!("0{text}")), Err(QueryError::Cursor));
    }

    #[test]
    fn a_range_defaults_to_thirty_days_ending_today_and_is_bounded() {
        let today = day("2026-03-31");
        let r = DayRange::parse(None, None, today).unwrap();
        assert_eq!((r.from(), r.to()), (day("2026-03-02"), today));
        let r = DayRange::parse(Some("2026-01-01"), Some("2026-01-01"), today).unwrap();
        assert_eq!(r.from(), r.to());
        let cases = [
            (Some("2026-02-01"), Some("2026-01-01"), QueryError::Reversed),
            (Some("2024-12-31"), Some("2026-01-01"), QueryError::TooLong),
            (Some("yesterday"), None, QueryError::Day("from")),
            (None, Some("2026-13-01"), QueryError::Day("to")),
            (
                Some("-9999-01-01"),
                Some("-9999-01-02"),
                QueryError::Day("to"),
            ),
            (Some("+10000-01-01"), None, QueryError::Day("from")),
        ];
        for (from, to, expected) in cases {
            assert_eq!(DayRange::parse(from, to, today), Err(expected));
        }
    }
}
