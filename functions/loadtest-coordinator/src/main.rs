// The run's futures nest deeply (start → slice → finalize); the default limit is too low.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error};
use loadtest_coordinator::handler::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env().await?;
    lambda_runtime::run(service_fn(|event| handle(&deps, event))).await
}
