//! The error of a value newtype (VRID, priority, weight) built from a
//! number outside its range.

/// A value outside the range its type allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} is out of range {min}..={max}")]
pub struct RangeError {
    pub what: &'static str,
    pub value: u32,
    pub min: u32,
    pub max: u32,
}
