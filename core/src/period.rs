//! STUB (replaced by the helper's implementation).
#![allow(missing_docs, unused)]
use std::sync::Arc;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeriodKind { All, Hourly, Daily, Weekly, Monthly, Every(std::num::NonZeroU64) }
impl std::str::FromStr for PeriodKind { type Err = PeriodError; fn from_str(s: &str) -> Result<Self, PeriodError> { todo!() } }
impl std::fmt::Display for PeriodKind { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { todo!() } }
#[derive(Debug, Clone)]
pub struct Timezone { name: Arc<str> }
impl Timezone { pub fn utc() -> Self { todo!() } pub fn parse(name: &str) -> Result<Self, PeriodError> { todo!() } pub fn name(&self) -> &str { todo!() } }
impl PartialEq for Timezone { fn eq(&self, o: &Self) -> bool { self.name == o.name } }
impl Eq for Timezone {}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period { pub kind: PeriodKind, pub id: Arc<str>, pub starts_ms: Option<i64>, pub ends_ms: Option<i64> }
impl PeriodKind { pub fn containing(self, tz: &Timezone, at_ms: i64) -> Period { todo!() } pub fn window(self, tz: &Timezone, at_ms: i64) -> [Period; 3] { todo!() } }
impl Period { pub fn previous(&self, tz: &Timezone) -> Option<Period> { todo!() } pub fn next(&self, tz: &Timezone) -> Option<Period> { todo!() } pub fn parse_id(id: &str, tz: &Timezone) -> Result<Period, PeriodError> { todo!() } pub fn is_closed(&self, now_ms: i64) -> bool { todo!() } }
pub fn format_ms(ms: i64) -> String { todo!() }
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PeriodError(pub String);
