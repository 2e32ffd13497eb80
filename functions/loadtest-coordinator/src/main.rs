// The run's futures nest deeply (start → slice → finalize); the default limit is too low.
#![recursion_limit = "256"]

use lambda_runtime::Error;
use loadtest_coordinator::handler::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env().await?;
    shared::lambda::serve(|event| handle(&deps, event)).await
}
