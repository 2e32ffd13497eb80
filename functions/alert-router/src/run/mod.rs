//! The use cases: routing SNS notifications (`route`) and the daily digest (`digest`).

pub mod digest;
pub mod route;
