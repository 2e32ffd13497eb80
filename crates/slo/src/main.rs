//! `slo generate [SLO_FILE] [OUT]`: writes the alarms' Terraform (default infra/slo/slos.json
//! → infra/slo_alarms.tf); `slo check` fails when OUT is stale; `slo table` prints the
//! thresholds as Markdown.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cmd = args.first().map(String::as_str).unwrap_or("generate");
    let input = args
        .get(1)
        .map(Into::into)
        .unwrap_or_else(|| root.join("infra/slo/slos.json"));
    let output = args
        .get(2)
        .map(Into::into)
        .unwrap_or_else(|| root.join("infra/slo_alarms.tf"));
    let run = || -> Result<(), String> {
        let text =
            std::fs::read_to_string(&input).map_err(|e| format!("{}: {e}", input.display()))?;
        let file = slo::parse(&text).map_err(|e| e.to_string())?;
        let plans = slo::plan(&file).map_err(|e| e.to_string())?;
        let tf = slo::tf::render_file(&file, &plans);
        match cmd {
            "generate" => {
                std::fs::write(&output, tf).map_err(|e| format!("{}: {e}", output.display()))?;
                eprintln!("wrote {}", output.display());
            }
            "check" => {
                let current = std::fs::read_to_string(&output).unwrap_or_default();
                if current != tf {
                    return Err(format!(
                        "{} is stale: run `cargo run -p slo -- generate`",
                        output.display()
                    ));
                }
            }
            "table" => print!("{}", slo::markdown_table(&plans)),
            other => {
                return Err(format!(
                    "unknown command {other:?}: generate | check | table"
                ))
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slo: {e}");
            ExitCode::FAILURE
        }
    }
}
