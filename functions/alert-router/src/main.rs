use alert_router::handler::{handle, Deps};
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env().await?;
    shared::lambda::serve(|event| handle(&deps, event)).await
}
