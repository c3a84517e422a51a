//! The command line every example takes: `[--gateway HOST[:PORT]] [--service NAME] [--help]`.
//!
//! The defaults are those of every Messaging Mesh client and the `mm` tool: gateway
//! `127.0.0.1:5050` (a host alone means port 5050) and service `DEFAULT`. `--help` prints the
//! example's usage and exits 0; anything else exits 2 with the reason.

use messaging_mesh::{DEFAULT_PORT, DEFAULT_SERVICE};

/// Where to connect.
pub struct ExampleArgs {
    /// `--gateway`, default `127.0.0.1:5050`.
    pub gateway: String,
    /// `--service`, default `DEFAULT`.
    pub service: String,
}

impl ExampleArgs {
    /// Parses the command line; `usage` is printed for `--help` and after a usage error.
    pub fn parse(usage: &str) -> ExampleArgs {
        let mut parsed = ExampleArgs {
            gateway: format!("127.0.0.1:{DEFAULT_PORT}"),
            service: DEFAULT_SERVICE.to_owned(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let target = match arg.as_str() {
                "--help" | "-h" => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                "--gateway" => &mut parsed.gateway,
                "--service" => &mut parsed.service,
                other => fail(&format!("unexpected argument `{other}`"), usage),
            };
            *target = args
                .next()
                .unwrap_or_else(|| fail(&format!("{arg} needs a value"), usage));
        }
        parsed
    }
}

fn fail(problem: &str, usage: &str) -> ! {
    eprintln!("{problem}\n{usage}");
    std::process::exit(2);
}
