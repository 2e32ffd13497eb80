//! A restore drill's world: the machine's PostgreSQL (playing the restored database) and, in
//! moto, the source RDS instance, the drill's subnet and parameter groups and the database
//! credentials secret.

use serde_json::json;

use crate::{create_buckets, venv_bin, Moto};

/// A connection to `db` on the machine's PostgreSQL (127.0.0.1:5432, trust auth, user
/// postgres), its connection task spawned.
pub async fn pg(db: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("PostgreSQL on 127.0.0.1:5432 (trust, user postgres): {e}"));
    tokio::spawn(conn);
    c
}

/// Drops a throwaway database (connections and all), ignoring errors.
pub async fn drop_database(name: &str) {
    let _ = pg("postgres")
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// The drill's report bucket.
pub const REPORTS: &str = "dr-reports";
/// The Secrets Manager secret holding the restored database's credentials (user postgres).
pub const SECRET: &str = "dr/restore-check";

/// The source instance `app-db` (postgres, 7 days of backups), the drill's subnet group
/// `dr-private` (two subnets of moto's default VPC) and parameter group `dr-pg15` (described
/// as `parameter_group_description`), the credentials secret [`SECRET`] (with
/// `secret_password`, which trust auth ignores) and the report bucket [`REPORTS`].
pub async fn seed(m: &Moto, secret_password: &str, parameter_group_description: &str) {
    let clients = m.clients().await;
    create_buckets(&clients.s3(), &[REPORTS]).await;
    let r = aws_sdk_rds::Client::new(&clients.sdk);
    r.create_db_instance()
        .db_instance_identifier("app-db")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .master_username("app")
        .master_user_password("not-used-here")
        .allocated_storage(20)
        .backup_retention_period(7)
        .send()
        .await
        .expect("source instance");
    r.create_db_parameter_group()
        .db_parameter_group_name("dr-pg15")
        .db_parameter_group_family("postgres15")
        .description(parameter_group_description)
        .send()
        .await
        .expect("parameter group");
    // Subnets exist in moto's default VPC; the subnet group must name real ones.
    let env = m.env();
    let out = std::process::Command::new(venv_bin("aws"))
        .args([
            "--endpoint-url",
            &m.url,
            "ec2",
            "describe-subnets",
            "--query",
            "Subnets[0:2].SubnetId",
            "--output",
            "text",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("aws ec2 describe-subnets");
    let subnets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        subnets.len() >= 2,
        "moto subnets: {subnets:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.create_db_subnet_group()
        .db_subnet_group_name("dr-private")
        .db_subnet_group_description("drill subnets")
        .set_subnet_ids(Some(subnets))
        .send()
        .await
        .expect("subnet group");
    aws_sdk_secretsmanager::Client::new(&clients.sdk)
        .create_secret()
        .name(SECRET)
        .secret_string(json!({"username": "postgres", "password": secret_password}).to_string())
        .send()
        .await
        .expect("secret");
}
