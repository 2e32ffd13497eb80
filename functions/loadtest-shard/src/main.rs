use lambda_runtime::Error;
use loadtest_shard::handler::{handle, Deps};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let deps = Deps::from_env()?;
    shared::lambda::serve(|event| handle(&deps, event)).await
}
