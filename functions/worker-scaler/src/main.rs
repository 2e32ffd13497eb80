use lambda_runtime::{service_fn, Error};
use worker_scaler::handler::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env().await?;
    lambda_runtime::run(service_fn(|event| handle(&deps, event))).await
}
