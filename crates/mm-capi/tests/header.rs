//! The committed C header is exactly what cbindgen generates from this crate: CI fails when an
//! exported function or type changed and `include/messaging_mesh.h` was not regenerated.
//!
//! Regenerate it with `MM_BLESS_HEADER=1 cargo test -p mm-capi --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_the_generated_one() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");

    let path = crate_dir.join("include/messaging_mesh.h");
    if std::env::var_os("MM_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date: run `MM_BLESS_HEADER=1 cargo test -p mm-capi --test header` and \
         commit the result",
        path.display()
    );
}
