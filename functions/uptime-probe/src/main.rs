use lambda_runtime::Error;
use uptime_probe::handler::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env().await?;
    shared::lambda::serve(|event| handle(&deps, event)).await
}
