//! The firehose Dockerfile cannot be built here (no Docker engine); this checks it builds the
//! right binary (cross-compiled by infra/docker/build-firehose.sh in a stage on the build
//! machine's platform), runs it as a non-root user on the firehose and bulk ports, and starts the
//! firehose unless told to run the bulk task.

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
    let stages: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "a build stage and a slim runtime stage");
    assert!(
        stages[0].starts_with("FROM --platform=$BUILDPLATFORM "),
        "the build stage runs natively and cross-compiles: {}",
        stages[0]
    );
    assert!(lines.contains(&r#"RUN ./build-firehose.sh "$TARGETARCH" /out/arroba"#));
    assert!(lines.contains(&"COPY --from=build /out/arroba /usr/local/bin/arroba"));
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/docker/build-firehose.sh"
    ))
    .unwrap();
    assert!(
        script.contains(r#"cargo build --release --locked --bin arroba --target "$target""#),
        "the script builds the arroba binary from the locked dependencies"
    );
    // It names the two platforms Fargate runs and refuses any other.
    let refused = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/docker/build-firehose.sh"
    ))
    .args(["s390x", "/nonexistent/arroba"])
    .output()
    .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unsupported platform"));
    let user = lines.iter().find(|l| l.starts_with("USER ")).unwrap();
    assert!(
        !user.contains("root") && !user.ends_with(" 0") && !user.contains(" 0:"),
        "{user}"
    );
    assert!(lines.contains(&"EXPOSE 2584 2585"));
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/arroba"]"#));
    assert_eq!(lines.last().unwrap(), &r#"CMD ["firehose"]"#);
    // The default command and the bulk container's exist in the binary this repository builds.
    for command in ["firehose", "bulk"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arroba"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}");
    }
}
