use lambda_runtime::{service_fn, Error};
use loadtest_shard::handler::{handle, Deps};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env()?;
    lambda_runtime::run(service_fn(|event| handle(&deps, event))).await
}
