//! dr-restore: point-in-time restore drills with RPO and schema checks, and failover
//! rehearsals (docs/dr-restore.md).
//!
//! - pure core: [`drill`] (the state machine), [`check`] (db_restore_check verdicts and the
//!   RPO), [`report`] (monthly JSON/Markdown), [`event`] (payload parsing), [`config`];
//! - ports and adapters: [`port`] (RDS, S3 conditional writes, SSM, Secrets Manager),
//!   [`db`] (tokio-postgres), [`smoke`] (reqwest);
//! - [`run`]: the drill and the rehearsal against the ports; [`handler`]: the Lambda adapter.

pub mod check;
pub mod config;
pub mod db;
pub mod drill;
pub mod event;
pub mod handler;
pub mod heads_parse;
pub mod port;
pub mod report;
pub mod run;
pub mod smoke;
