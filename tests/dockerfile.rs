//! The firehose Dockerfile cannot be built here (no Docker engine); this checks it builds the
//! right binary, runs it as a non-root user on the firehose port, and starts the firehose.
#![allow(clippy::unwrap_used)]

#[test]
fn the_firehose_image_runs_the_firehose_binary_as_non_root_on_its_port() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/docker/Dockerfile"
    ))
    .unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(stages, 2, "a build stage and a slim runtime stage");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cargo build --release --locked --bin arroba"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("COPY --from=build /src/target/release/arroba "))
    );
    let user = lines.iter().find(|l| l.starts_with("USER ")).unwrap();
    assert!(
        !user.contains("root") && !user.ends_with(" 0") && !user.contains(" 0:"),
        "{user}"
    );
    assert!(lines.contains(&"EXPOSE 2584"));
    assert_eq!(
        lines.last().unwrap(),
        &r#"ENTRYPOINT ["/usr/local/bin/arroba", "firehose"]"#
    );
    // The entrypoint's subcommand exists in the binary this repository builds.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arroba"))
        .args(["firehose", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
}
