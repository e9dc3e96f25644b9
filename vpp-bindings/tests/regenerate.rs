//! The committed `src/gen/` must be exactly what the generator writes from the API JSON.
//! Skips (saying why) when the JSON is not present.

use vpp_bindings::apigen;

#[test]
fn committed_bindings_match_a_fresh_generation() {
    let api_dir = apigen::default_api_dir();
    if !api_dir.is_dir() {
        eprintln!(
            "SKIP committed_bindings_match_a_fresh_generation: no API JSON at {} (set VPP_API_DIR)",
            api_dir.display()
        );
        return;
    }
    let modules: Vec<String> = apigen::DEFAULT_MODULES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let files = apigen::generate(&api_dir, &modules).expect("generation succeeds");
    let tmp = tempfile::tempdir().expect("tempdir");
    apigen::write_files(tmp.path(), &files).expect("write");

    let committed = apigen::default_out_dir();
    let mut committed_names: Vec<String> = std::fs::read_dir(&committed)
        .expect("src/gen exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    committed_names.sort();
    let mut fresh_names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    fresh_names.sort();
    assert_eq!(
        committed_names, fresh_names,
        "set of generated files differs"
    );

    let mut stale = Vec::new();
    for (name, _) in &files {
        let fresh = std::fs::read_to_string(tmp.path().join(name)).expect("fresh file");
        let old = std::fs::read_to_string(committed.join(name)).expect("committed file");
        if fresh != old {
            stale.push(name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "src/gen is stale, rerun `cargo run -p vpp-bindings --bin vpp-apigen`: {stale:?}"
    );
}
