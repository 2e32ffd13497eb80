use cost_anomaly::handler::{handle, Deps};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env().await?;
    lambda_runtime::run(service_fn(|event| handle(&deps, event))).await
}
