//! `vpp-apigen`: regenerates `vpp-bindings/src/gen/` from VPP's `.api.json` files.
//! Usage: `cargo run -p vpp-bindings --bin vpp-apigen -- [--api-dir DIR] [--out DIR] [--module M]...`

use std::path::PathBuf;
use std::process::ExitCode;

use vpp_bindings::apigen;

fn usage() -> ExitCode {
    eprintln!(
        "usage: vpp-apigen [--api-dir DIR] [--out DIR] [--module NAME]...\n\
         --api-dir  .api.json directory (default: $VPP_API_DIR, else ../shared/vpp-api)\n\
         --out      output directory (default: vpp-bindings/src/gen)\n\
         --module   API module to generate (repeatable; default: the project's set)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut api_dir = None;
    let mut out = None;
    let mut modules: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--api-dir" => api_dir = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--module" => match args.next() {
                Some(m) => modules.push(m),
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            _ => return usage(),
        }
    }
    let api_dir = api_dir.unwrap_or_else(apigen::default_api_dir);
    let out = out.unwrap_or_else(apigen::default_out_dir);
    if modules.is_empty() {
        modules = apigen::DEFAULT_MODULES
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    let files = match apigen::generate(&api_dir, &modules) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vpp-apigen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = apigen::write_files(&out, &files) {
        eprintln!("vpp-apigen: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "vpp-apigen: wrote {} files from {} to {}",
        files.len(),
        api_dir.display(),
        out.display()
    );
    ExitCode::SUCCESS
}
