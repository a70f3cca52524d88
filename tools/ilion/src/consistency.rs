//! Consistency level names as CQL tools spell them (`QUORUM`, `LOCAL_ONE`),
//! for the clients in this program (`stress`, `shell`).

use scylla::statement::{Consistency, SerialConsistency};

/// Every level a request can ask for, by its CQL name.
const LEVELS: [(&str, Consistency); 11] = [
    ("ANY", Consistency::Any),
    ("ONE", Consistency::One),
    ("TWO", Consistency::Two),
    ("THREE", Consistency::Three),
    ("QUORUM", Consistency::Quorum),
    ("ALL", Consistency::All),
    ("LOCAL_QUORUM", Consistency::LocalQuorum),
    ("EACH_QUORUM", Consistency::EachQuorum),
    ("SERIAL", Consistency::Serial),
    ("LOCAL_SERIAL", Consistency::LocalSerial),
    ("LOCAL_ONE", Consistency::LocalOne),
];

/// A level by name, any case.
pub fn parse(text: &str) -> Option<Consistency> {
    LEVELS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|(_, level)| *level)
}

/// The CQL name of a level.
pub fn name(level: Consistency) -> &'static str {
    LEVELS
        .iter()
        .find(|(_, l)| *l == level)
        .map_or("ONE", |(name, _)| name)
}

/// A serial level by name, any case.
pub fn parse_serial(text: &str) -> Option<SerialConsistency> {
    match parse(text)? {
        Consistency::Serial => Some(SerialConsistency::Serial),
        Consistency::LocalSerial => Some(SerialConsistency::LocalSerial),
        _ => None,
    }
}

pub fn serial_name(level: SerialConsistency) -> &'static str {
    match level {
        SerialConsistency::Serial => "SERIAL",
        SerialConsistency::LocalSerial => "LOCAL_SERIAL",
    }
}

/// The level names, for help and error messages.
pub fn names() -> String {
    LEVELS.map(|(name, _)| name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (text, level) in LEVELS {
            assert_eq!(parse(&text.to_lowercase()), Some(level));
            assert_eq!(name(level), text);
        }
        assert_eq!(parse("most"), None);
        assert_eq!(
            parse_serial("local_serial"),
            Some(SerialConsistency::LocalSerial)
        );
        assert_eq!(parse_serial("QUORUM"), None);
    }
}
