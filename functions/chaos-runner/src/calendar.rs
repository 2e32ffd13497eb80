//! When an experiment is due: the first Friday of the month (UTC); quarterly experiments (the
//! database) only on the first Friday of January, April, July and October. The schedule fires
//! more often (every few minutes on Fridays, to resume runs); this is the authority.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Monthly,
    Quarterly,
}

/// The months of a quarterly experiment.
pub const QUARTER_MONTHS: [u32; 4] = [1, 4, 7, 10];

pub fn first_friday(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Fri, 1)
}

/// Whether an experiment of this cadence is due on `date` (a UTC date).
pub fn is_due(date: NaiveDate, cadence: Cadence) -> bool {
    if first_friday(date.year(), date.month()) != Some(date) {
        return false;
    }
    match cadence {
        Cadence::Monthly => true,
        Cadence::Quarterly => QUARTER_MONTHS.contains(&date.month()),
    }
}

/// The next due date on or after `from` (for the response and the docs).
pub fn next_due(from: NaiveDate, cadence: Cadence) -> Option<NaiveDate> {
    let (mut y, mut m) = (from.year(), from.month());
    for _ in 0..24 {
        if let Some(d) = first_friday(y, m) {
            if d >= from && is_due(d, cadence) {
                return Some(d);
            }
        }
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn known_first_fridays() {
        assert_eq!(first_friday(2026, 11), Some(d(2026, 11, 6)));
        assert_eq!(first_friday(2026, 1), Some(d(2026, 1, 2)));
        assert_eq!(first_friday(2027, 1), Some(d(2027, 1, 1)), "New Year's Day");
        assert_eq!(first_friday(2028, 2), Some(d(2028, 2, 4)));
        assert!(is_due(d(2026, 11, 6), Cadence::Monthly));
        assert!(!is_due(d(2026, 11, 6), Cadence::Quarterly));
        assert!(is_due(d(2026, 10, 2), Cadence::Quarterly));
        assert!(!is_due(d(2026, 11, 13), Cadence::Monthly), "second Friday");
        assert!(!is_due(d(2026, 11, 5), Cadence::Monthly));
        assert_eq!(
            next_due(d(2026, 11, 7), Cadence::Monthly),
            Some(d(2026, 12, 4))
        );
        assert_eq!(
            next_due(d(2026, 11, 7), Cadence::Quarterly),
            Some(d(2027, 1, 1))
        );
    }

    /// Every month from 2020 to 2039, walking every day: exactly one monthly due day, a Friday,
    /// day <= 7; quarterly due days only in Jan/Apr/Jul/Oct, exactly one there.
    #[test]
    fn every_day_of_twenty_years() {
        let mut day = d(2020, 1, 1);
        let end = d(2040, 1, 1);
        let mut monthly = std::collections::BTreeMap::<(i32, u32), Vec<NaiveDate>>::new();
        let mut quarterly = std::collections::BTreeMap::<(i32, u32), Vec<NaiveDate>>::new();
        while day < end {
            if is_due(day, Cadence::Monthly) {
                monthly
                    .entry((day.year(), day.month()))
                    .or_default()
                    .push(day);
            }
            if is_due(day, Cadence::Quarterly) {
                quarterly
                    .entry((day.year(), day.month()))
                    .or_default()
                    .push(day);
            }
            day = day.succ_opt().unwrap();
        }
        assert_eq!(monthly.len(), 240);
        for days in monthly.values() {
            assert_eq!(days.len(), 1);
            assert_eq!(days[0].weekday(), Weekday::Fri);
            assert!(days[0].day() <= 7);
        }
        assert_eq!(quarterly.len(), 80);
        for ((_, m), days) in &quarterly {
            assert!(QUARTER_MONTHS.contains(m));
            assert_eq!(days.len(), 1);
            assert!(monthly.values().any(|v| v == days), "quarterly is a subset");
        }
    }

    proptest! {
        /// Any date: due means Friday, day <= 7, and no earlier Friday that month; the week
        /// before a due date never holds one.
        #[test]
        fn due_days_are_first_fridays(days in 0i64..(365 * 200)) {
            let date = d(1950, 1, 1) + chrono::Duration::days(days);
            let due = is_due(date, Cadence::Monthly);
            let expected = date.weekday() == Weekday::Fri && date.day() <= 7;
            prop_assert_eq!(due, expected);
            if due {
                for back in 1..7 {
                    let earlier = date - chrono::Duration::days(back);
                    prop_assert!(!(is_due(earlier, Cadence::Monthly) && earlier.month() == date.month()));
                }
                let q = is_due(date, Cadence::Quarterly);
                prop_assert_eq!(q, QUARTER_MONTHS.contains(&date.month()));
            } else {
                prop_assert!(!is_due(date, Cadence::Quarterly));
            }
            let next = next_due(date, Cadence::Monthly).unwrap();
            prop_assert!(next >= date && (next - date).num_days() <= 35);
        }
    }
}
